"""The API's kept-alive connections to the llama-servers, one pool per port, closed as soon
as their server begins to stop.

llama-server (cpp-httplib) looks at each kept-alive connection it holds every 10 ms to see
whether it is stopping, so a server with an idle connection open exits up to 10 ms later
after SIGTERM than one without: a switch waits for that exit. Closing the port's idle
connections when its stop begins lets it exit at once. A connection still carrying an answer
is left alone; its pool is closed once the server is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from app.core.servers.states import ServerState, StateEvent


def upstream_session(keepalive: float) -> aiohttp.ClientSession:
    """A session the API talks to another server with: no limit on connections, kept alive
    ``keepalive`` seconds, bodies passed on as they come (not decompressed), no proxy from
    the environment."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=keepalive),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        auto_decompress=False,
        trust_env=False,
    )


class ServerLinks:
    """``session(port)``: the session that talks to the llama-server on ``port``;
    ``on_state``: follows the manager's port states (``PortTable.subscribe``); ``busy(port)``:
    something is being sent to or read from that port now."""

    def __init__(self, busy: Callable[[int], bool], keepalive: float) -> None:
        self._busy = busy
        self._keepalive = keepalive
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._closing: set[asyncio.Future] = set()
        self._closed = False

    def session(self, port: int) -> aiohttp.ClientSession:
        s = self._sessions.get(port)
        if s is None:
            if self._closed:
                raise RuntimeError("The API's connections to its servers are closed")
            s = self._sessions[port] = upstream_session(self._keepalive)
        return s

    def ports(self) -> list[int]:
        """The ports with a pool open now."""
        return sorted(self._sessions)

    def on_state(self, event: StateEvent) -> None:
        """A stop begins: close the port's connections if none carries an answer; the
        server is gone (stopped, failed): close them in any case."""
        stopping = event.new is ServerState.STOPPING
        if (stopping and not self._busy(event.port)) or not event.new.alive:
            self.drop(event.port)

    def drop(self, port: int) -> None:
        """Close the connections to ``port`` now (the next request opens a new one)."""
        s = self._sessions.pop(port, None)
        connector = s.connector if s is not None else None
        if connector is None:
            return
        s.detach()  # the connector is closed here, at once, not in a task later
        task = asyncio.ensure_future(connector.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every pool and wait for the connections to be closed."""
        self._closed = True
        for port in list(self._sessions):
            self.drop(port)
        await asyncio.gather(*self._closing, return_exceptions=True)
