"""Waiting for a llama-server to become ready: ``GET /health`` with back-off, woken early by
the server's own "listening on" line in its log (watched with a cheap ``stat``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # imported when a server starts (10 MB): not by a tray with the API off at rest
    import aiohttp

FIRST_INTERVAL = 0.005
BACKOFF = 0.1  # the interval grows by 10 % of the time waited so far
MAX_INTERVAL = 0.2
LOG_STEP = 0.002  # how often the log's size is looked at between health probes
READY_MARKS = (b"listening on http", b"all slots are idle")


class LogWatch:
    """Tells when a server's log gains a line llama-server prints when it is ready.

    Reads only what was appended since ``offset`` (a ``stat`` per look while nothing is),
    keeping a short tail so a mark split across two reads is still found.
    """

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.pos = offset
        self.tail = b""

    @property
    def started(self) -> bool:
        """True once the server has written anything: its log can be trusted to speak."""
        return self.pos > self.offset

    def ready_now(self) -> bool:
        """True when the lines appended since the last look hold a ready mark."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return False
        if size < self.pos:  # rotated or truncated under us: start over
            self.pos, self.tail = 0, b""
        if size == self.pos:
            return False
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read(min(size - self.pos, 4 * 1024 * 1024))
        except OSError:
            return False
        self.pos += len(data)
        window, kept = self.tail + data, len(self.tail)
        self.tail = window[-64:]
        # only marks that end in the new bytes (one already seen in the kept tail is old)
        return any(window.find(m, max(0, kept - len(m) + 1)) >= 0 for m in READY_MARKS)


def loopback_client(**kw) -> httpx.AsyncClient:
    """An httpx client for plain HTTP on loopback: no TLS context to build (about 100 ms
    saved), and no proxy from the environment in the way."""
    return httpx.AsyncClient(verify=False, trust_env=False, **kw)


def health_url(port: int, prefix: str = "") -> str:
    return f"http://127.0.0.1:{port}{prefix}/health"


async def probe(client: aiohttp.ClientSession, port: int, prefix: str = "") -> bool:
    """One check: True when the server says it is ready (200 ``{"status": "ok"}``).

    With aiohttp, the API's own HTTP client: a probe costs about a third of httpx's (0.6
    against 1.5-2 ms here), and a switch waits for the last one."""
    import aiohttp

    try:
        async with client.get(health_url(port, prefix)) as r:
            if r.status != 200:
                return False
            body = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False
    return isinstance(body, dict) and body.get("status") == "ok"


class ProcessExited(Exception):
    def __init__(self, code: int | None) -> None:
        self.code = code
        super().__init__(code)


async def poll_until_ready(
    port: int,
    exited: asyncio.Future[int | None],
    timeout: float,
    headers: dict[str, str] | None = None,
    log: LogWatch | None = None,
    prefix: str = "",
) -> float:
    """Poll until ready; return the seconds waited.

    Raises ``ProcessExited`` the moment ``exited`` completes, and ``TimeoutError`` after
    ``timeout`` seconds. The interval starts at 5 ms and grows with the time waited
    (10 % of it) up to 200 ms: a tiny model is seen within milliseconds, a 20 GB one is
    not polled 200 times a second. With ``log``, the server's own line says when to look:
    the first probe waits for it (a probe while the server starts takes CPU from it), and
    the probes between are every 200 ms, for a server that never logs the line.
    """
    exit_task = exited  # owned by the caller: never cancelled here
    start = time.monotonic()
    deadline = start + timeout
    import aiohttp  # 10 MB: not at import, for a tray whose API is off

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1),
        timeout=aiohttp.ClientTimeout(total=2.0),
        headers=headers,
    )
    async with session as client:
        looked = log is None  # with the log, wait for its line (or 200 ms) first
        while True:
            if exit_task.done():
                raise ProcessExited(exit_task.result())
            if looked:
                probe_task = asyncio.ensure_future(probe(client, port, prefix))
                await asyncio.wait({probe_task, exit_task}, return_when=asyncio.FIRST_COMPLETED)
                if exit_task.done():
                    probe_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await probe_task
                    raise ProcessExited(exit_task.result())
                if probe_task.result():
                    return time.monotonic() - start
            looked = True
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError
            delay = min(FIRST_INTERVAL + (now - start) * BACKOFF, MAX_INTERVAL)
            if log is not None:
                # the log line ends the wait: probe rarely, so the probes do not take CPU
                # from a server that is loading
                delay = MAX_INTERVAL
            until = now + min(delay, deadline - now)
            if log is None:
                await asyncio.wait({exit_task}, timeout=until - now)
                continue
            while not exit_task.done() and time.monotonic() < until and not log.ready_now():
                await asyncio.wait({exit_task}, timeout=LOG_STEP)
