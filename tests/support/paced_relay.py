"""A real llama-server whose streamed events the test releases one at a time.

The app starts ``llama-server`` on its port P as usual, but ``LLAMA_SERVER_PATH`` points at a
one-line wrapper that ``exec``s the real binary on a hidden port Q (same process, same
arguments, same key). Once the manager reports the server starting, ``PacedRelay`` listens
on P and passes every byte between the app and Q unchanged, except the events of a stream
(``text/event-stream``): it holds each one until the test calls ``release()``. So the test
knows the moment llama-server's event was "written" towards the app, and can check that
the app's client receives it before the next one exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from tests.support.fakes import write_script

EXEC_ON_HIDDEN_PORT = r"""
import os, sys
args = sys.argv[1:]
args[args.index("--port") + 1] = {hidden_port!r}
os.execv({binary!r}, [{binary!r}, *args])
"""


def exec_on_hidden_port(path: Path, binary: str, hidden_port: int) -> Path:
    """A ``llama-server`` that is the real one, on ``hidden_port`` whatever port it is given."""
    return write_script(
        path, EXEC_ON_HIDDEN_PORT.format(binary=binary, hidden_port=str(hidden_port))
    )


class PacedRelay:
    def __init__(self, port: int, hidden_port: int) -> None:
        self.port, self.hidden_port = port, hidden_port
        self.server: asyncio.Server | None = None
        self._gate: asyncio.Queue[None] = asyncio.Queue()
        self.held = 0  # events waiting for release()
        self.released: list[float] = []  # time.perf_counter() of each release()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self.server is not None:
            await self.server.wait_closed()

    def release(self) -> None:
        """Let the next held event go (now, or as soon as it is there)."""
        self.released.append(time.perf_counter())
        self._gate.put_nowait(None)

    # ── the relay ─────────────────────────────────────────────────────────────
    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        self._tasks.add(me)
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.hidden_port)
        except OSError:  # not listening yet: the app's readiness check tries again
            cw.close()
            self._tasks.discard(me)
            return
        up = asyncio.create_task(self._pipe(cr, uw))
        self._tasks.add(up)
        try:
            while await self._response(ur, cw):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            up.cancel()
            for w in (cw, uw):
                w.close()
            self._tasks.discard(up)
            self._tasks.discard(me)

    @staticmethod
    async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        with contextlib.suppress(OSError):
            w.write_eof()

    async def _response(self, ur: asyncio.StreamReader, cw: asyncio.StreamWriter) -> bool:
        """Relay one response; False at the end of the connection."""
        try:
            head = await ur.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        fields = {
            k.strip().lower(): v.strip()
            for k, _, v in (
                line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:]
            )
            if k
        }
        cw.write(head)
        if "content-length" in fields:
            cw.write(await ur.readexactly(int(fields["content-length"])))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            stream = "text/event-stream" in fields.get("content-type", "")
            await self._chunks(ur, cw, stream)
        else:  # until the server closes
            while data := await ur.read(65536):
                cw.write(data)
            await cw.drain()
            return False
        await cw.drain()
        return True

    async def _chunks(
        self, ur: asyncio.StreamReader, cw: asyncio.StreamWriter, paced: bool
    ) -> None:
        pending = b""
        while True:
            size = int((await ur.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await ur.readexactly(size + 2)
            if not paced:
                cw.write(b"%x\r\n" % size + data)
                if size == 0:
                    return
                continue
            pending += data[:-2]
            events = pending.split(b"\n\n")
            pending = events.pop()  # what follows the last blank line: not whole yet
            if size == 0 and pending:
                events.append(pending)
            for e in events:
                await self._send_when_released(cw, e + b"\n\n")
            if size == 0:
                cw.write(b"0\r\n\r\n")
                return

    async def _send_when_released(self, cw: asyncio.StreamWriter, event: bytes) -> None:
        self.held += 1
        await self._gate.get()
        self.held -= 1
        cw.write(b"%x\r\n%s\r\n" % (len(event), event))
        await cw.drain()
