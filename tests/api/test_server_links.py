"""The API's connections to its llama-servers (``ServerLinks``) against a real loopback HTTP
server that keeps connections alive and tells when the client closed one: a server whose
stop begins loses its idle connections at once (llama-server would otherwise exit up to
10 ms later), one carrying an answer keeps it until the server is gone."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from app.core.api.inflight import InFlight
from app.core.api.server_links import ServerLinks
from app.core.lifecycle.hung import probe_client
from app.core.servers.states import ServerState, ServerStatus, StateEvent

GUARD = 10.0  # a hang guard only: every wait below ends on an event long before


class KeepAliveServer:
    """HTTP/1.1 on loopback: answers ``ok`` on a kept-alive connection; ``/slow`` waits for
    ``release`` before its answer. Counts the connections open now and tells when one ends."""

    def __init__(self) -> None:
        self.open = 0
        self.opened = 0
        self.ended = asyncio.Event()
        self.release = asyncio.Event()
        self.asked = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> KeepAliveServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), GUARD)

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.open += 1
        self.opened += 1
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                if head.split(b" ", 2)[1] == b"/slow":
                    self.asked.set()
                    await self.release.wait()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            self.ended.set()
            w.close()

    async def wait_ended(self) -> None:
        await asyncio.wait_for(self.ended.wait(), GUARD)
        self.ended.clear()


def event(port: int, old: ServerState, new: ServerState) -> StateEvent:
    return StateEvent(port, old, new, ServerStatus(port=port, state=new))


async def get(links: ServerLinks, port: int, path: str = "/") -> str:
    async with links.session(port).get(f"http://127.0.0.1:{port}{path}") as r:
        return await r.text()


async def test_a_stop_closes_the_idle_connections_to_its_port_only():
    links = ServerLinks(lambda port: False, keepalive=30.0)
    try:
        async with KeepAliveServer() as a, KeepAliveServer() as b:
            assert await get(links, a.port) == "ok" and await get(links, b.port) == "ok"
            assert (a.open, b.open) == (1, 1)  # kept alive after the answer
            links.on_state(event(a.port, ServerState.READY, ServerState.STOPPING))
            await a.wait_ended()
            assert (a.open, b.open) == (0, 1)
            assert links.ports() == [b.port]
            # the next request to that port opens a new connection
            assert await get(links, a.port) == "ok"
            assert (a.opened, a.open) == (2, 1)
    finally:
        await links.close()


async def test_a_connection_carrying_an_answer_is_kept_until_the_server_is_gone():
    inflight = InFlight(RuntimeError)
    links = ServerLinks(inflight.busy, keepalive=30.0)
    try:
        async with KeepAliveServer() as s:
            assert await get(links, s.port) == "ok"
            post = asyncio.ensure_future(
                links.session(s.port).get(f"http://127.0.0.1:{s.port}/slow")
            )
            inflight.posting(s.port, post)
            await asyncio.wait_for(s.asked.wait(), GUARD)
            assert inflight.busy(s.port)
            links.on_state(event(s.port, ServerState.READY, ServerState.STOPPING))
            s.release.set()  # the answer still arrives whole: its connection was not closed
            r = await asyncio.wait_for(post, GUARD)
            inflight.answering(s.port, r)
            assert await r.text() == "ok"
            assert not inflight.busy(s.port)
            assert (s.opened, s.open) == (1, 1)  # the one kept-alive connection carried it
            assert s.port in links.ports()
            links.on_state(event(s.port, ServerState.STOPPING, ServerState.STOPPED))
            await s.wait_ended()
            assert s.open == 0 and links.ports() == []
    finally:
        await links.close()


async def test_a_crash_closes_the_port_s_connections():
    links = ServerLinks(lambda port: True, keepalive=30.0)  # even when busy: it is gone
    try:
        async with KeepAliveServer() as s:
            assert await get(links, s.port) == "ok"
            links.on_state(event(s.port, ServerState.READY, ServerState.FAILED))
            await s.wait_ended()
            assert s.open == 0
    finally:
        await links.close()


async def test_close_ends_every_connection_and_no_new_one_is_opened():
    links = ServerLinks(lambda port: False, keepalive=30.0)
    async with KeepAliveServer() as s:
        assert await get(links, s.port) == "ok"
        await links.close()
        await s.wait_ended()
        assert s.open == 0
        with pytest.raises(RuntimeError, match="closed"):
            links.session(s.port)


async def test_the_hung_check_keeps_no_connection_open():
    """Its checks come every few seconds: a connection kept alive between them would hold
    up every stop by up to 10 ms."""
    async with KeepAliveServer() as s, probe_client() as client:
        r = await client.get(f"http://127.0.0.1:{s.port}/health")
        assert r.text == "ok"
        await s.wait_ended()
        assert s.open == 0
