"""The API's kept-alive connections to the llama-servers, one pool per port, closed as soon
as their server begins to stop.

llama-server (cpp-httplib) looks at each kept-alive connection it holds every 10 ms to see
whether it is stopping, so a server with an idle connection open exits up to 10 ms later
after SIGTERM than one without: a switch waits for that exit. Closing the port's idle
connections when its stop begins lets it exit at once. A connection still carrying an answer
is left alone; its pool is closed once the server is gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aiohttp

from app.core.servers.states import ServerState, StateEvent


class ServerLinks:
    """``session(port)``: the session that talks to the llama-server on ``port``;
    ``on_state``: follows the manager's port states (``PortTable.subscribe``); ``busy(port)``:
    something is being sent to or read from that port now."""

    def __init__(self, busy: Callable[[int], bool], keepalive: float) -> None:
        self._busy = busy
        self._keepalive = keepalive
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._closing: set[Awaitable[object]] = set()
        self._closed = False

    def session(self, port: int) -> aiohttp.ClientSession:
        s = self._sessions.get(port)
        if s is None or s.closed:
            if self._closed:
                raise RuntimeError("The API's connections to its servers are closed")
            s = self._sessions[port] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=self._keepalive),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                auto_decompress=False,
                trust_env=False,
            )
        return s

    def ports(self) -> list[int]:
        """The ports with a pool open now."""
        return sorted(self._sessions)

    def on_state(self, event: StateEvent) -> None:
        """A stop begins: close the port's connections if none carries an answer; the
        server is gone (stopped, failed): close them in any case."""
        if event.new is ServerState.STOPPING and event.old is not ServerState.STOPPING:
            if not self._busy(event.port):
                self.drop(event.port)
        elif not event.new.alive:
            self.drop(event.port)

    def drop(self, port: int) -> None:
        """Close the connections to ``port`` now (the next request opens a new one)."""
        s = self._sessions.pop(port, None)
        if s is None or s.closed:
            return
        connector = s.connector
        s.detach()  # the connector is closed here, at once, not in a task later
        if connector is not None:
            self._track(connector.close())

    def _track(self, waiter: Awaitable[object]) -> None:
        task = asyncio.ensure_future(waiter)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every pool and wait for the connections to be closed."""
        self._closed = True
        for port in list(self._sessions):
            self.drop(port)
        if self._closing:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._closing, return_exceptions=True)
