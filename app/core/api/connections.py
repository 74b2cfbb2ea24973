"""Connection-level guards, below aiohttp's request handlers.

Why a subclass: aiohttp's ``RequestHandler`` (the protocol of one connection) has a single
idle timer (``keepalive_timeout``), which also decides how long a connection that never
sends a byte stays open; no deadline for a request's head; no bound on open connections;
and it answers HTTP it cannot parse with a plain-text 400 that echoes the input, after a
traceback in the log. ``GuardedHandler`` is the smallest subclass that adds those:

- a head deadline (``API_HEADER_TIMEOUT_SECONDS``), from the connection's start or from
  the first byte of the next request on a kept-alive one until its head is parsed: a
  connection that sent nothing is closed, one that sent part of a head gets 408;
- a table of open connections (``ConnectionTable``), capped at ``API_MAX_OPEN_CONNECTIONS``
  and at what the open-file limit allows less a reserve for the app's own work: at the cap
  the longest-idle connection (or the body that stalled longest) is closed for the new
  one; only when every connection is busy answering is a new one refused, with a 503;
- parser errors answered as the API's JSON errors, the echoed input cut short, and
  recorded once per client and minute (``RefusalLog``) instead of a traceback each.

``GuardedSite`` is a TCP site that makes these handlers; ``watch_accept_errors`` turns
asyncio's traceback for a failed ``accept()`` (out of descriptors) into one warning a
minute. Everything else is aiohttp's own. The subclass reads one of aiohttp's internals,
``_request_count`` (request heads parsed on the connection); tests/api/test_abuse.py
fails if its meaning changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from app.config import Settings
from app.core.api.common import clip, error_response
from app.core.api.refusals import RefusalLog
from app.platform.open_files import open_file_limit, raise_open_file_limit

log = logging.getLogger(__name__)

MAX_HEADERS = 64  # header lines per request (aiohttp's default is 128): bounds a head's memory
ACCEPT_BACKLOG = 128  # connections the loop may accept in one go, before any is counted
OWN_FILES = 64  # descriptors kept for the app itself: log files, llama-server starts, /proc


def connection_budget(max_open: int, answering: int, soft_limit: int | None) -> int:
    """Open API connections allowed: ``max_open``, and no more than the open-file limit
    less a reserve (a burst of accepts, one upstream socket per request being answered,
    the app's own files)."""
    if soft_limit is None:
        return max_open
    return max(8, min(max_open, soft_limit - ACCEPT_BACKLOG - answering - OWN_FILES))


class ConnectionTable:
    """The open connections of one API server, least recently active first."""

    def __init__(self, capacity: int, header_timeout: float, refusals: RefusalLog) -> None:
        self.capacity = capacity
        self.header_timeout = header_timeout
        self.refusals = refusals
        self._open: OrderedDict[GuardedHandler, None] = OrderedDict()
        self.evicted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._open)

    def add(self, conn: GuardedHandler) -> bool:
        """Count a new connection, closing idle ones to make room; False: no room."""
        while len(self._open) >= self.capacity:
            victim = next((c for c in self._open if c.evictable), None)
            if victim is None:
                self.refused += 1
                self.refusals.warn(
                    "connections_busy",
                    f"The API has {len(self._open)} connections open, every one answering a "
                    f"request (the limit is {self.capacity}: API_MAX_OPEN_CONNECTIONS or the "
                    "open-file limit); new connections get 503 until one ends.",
                )
                return False
            self._open.pop(victim)
            victim.force_close()
            self.evicted += 1
            self.refusals.warn(
                "connections_full",
                f"The API has {self.capacity} connections open (API_MAX_OPEN_CONNECTIONS or "
                "the open-file limit): closing the longest idle ones for new clients.",
            )
        self._open[conn] = None
        return True

    def touch(self, conn: GuardedHandler) -> None:
        if conn in self._open:
            self._open.move_to_end(conn)

    def remove(self, conn: GuardedHandler) -> None:
        self._open.pop(conn, None)


def handler_args(s: Settings) -> dict:
    """aiohttp's options for each connection (``RequestHandler``)."""
    return {
        "keepalive_timeout": s.API_KEEPALIVE_SECONDS,
        # after a refusal (413, 408, 403), the rest of a body is read and dropped for at
        # most this long, so the client can read the answer, then the connection closes
        "lingering_time": min(10.0, s.API_BODY_TIMEOUT_SECONDS),
        "access_log": None,
        "max_headers": MAX_HEADERS,
        "auto_decompress": False,  # the guard inflates bodies itself, bounded (bodies.py)
    }


def connection_table(s: Settings, refusals: RefusalLog) -> ConnectionTable:
    """The connection table, sized from the settings and the open-file limit (raised first,
    toward the hard limit, so a desktop's 1,024 does not cap the API)."""
    raised = raise_open_file_limit()
    if raised is not None and raised.soft != raised.was:
        log.info("Open-file limit raised from %d to %d", raised.was, raised.soft)
    budget = connection_budget(s.API_MAX_OPEN_CONNECTIONS, s.API_MAX_CONNECTIONS, open_file_limit())
    if budget < s.API_MAX_OPEN_CONNECTIONS:
        log.warning(
            "The open-file limit (%s) allows %d open API connections, fewer than "
            "API_MAX_OPEN_CONNECTIONS=%d; raise it with ulimit -n.",
            open_file_limit(),
            budget,
            s.API_MAX_OPEN_CONNECTIONS,
        )
    return ConnectionTable(budget, s.API_HEADER_TIMEOUT_SECONDS, refusals)


def raw_error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole JSON error response, for a connection no request handler answers."""
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    ).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


class GuardedHandler(RequestHandler):
    """aiohttp's protocol for one connection, with a head deadline, a place in the
    connection table, and JSON answers for HTTP it cannot parse."""

    __slots__ = (
        "_table",
        "_head_timer",
        "_head_at",
        "_head_sent",
        "_answered",
        "receiving",
        "linger",
    )

    def __init__(self, manager: web.Server, table: ConnectionTable, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._table = table
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_at = 0  # heads parsed when the deadline was set
        self._head_sent = False  # bytes of that head have arrived
        self._answered = 0  # responses finished; aiohttp counts heads parsed
        self.receiving = False  # the guard is reading this connection's request body
        self.linger = True  # after a refusal, drain the rest of the body before closing

    @property
    def client(self) -> str | None:
        peer = self.peername
        return peer[0] if isinstance(peer, tuple) else peer

    @property
    def busy(self) -> bool:
        """A request of this connection has been parsed and is not answered yet."""
        return self._request_count > self._answered

    @property
    def evictable(self) -> bool:
        """Idle, part of a head, or a body still arriving: what may be closed for room."""
        return self.receiving or not self.busy

    # ── The connection's life ─────────────────────────────────────────────────
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._table.add(self):
            self._answer_and_close(
                503,
                "The API has no room for another connection: every one is answering a "
                "request. Try again in a moment.",
                "too_many_connections",
                {"Retry-After": "1"},
            )
            return
        self._set_head_deadline(sent=False)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._table.remove(self)
        self._clear_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._table.touch(self)
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._clear_head_deadline()  # a head arrived
        elif self._head_timer is not None:
            self._head_sent = self._head_sent or bool(data)
        elif data and not self.busy and self.transport is not None:
            self._set_head_deadline(sent=True)  # the next request on a kept-alive connection

    async def finish_response(self, request, resp, start_time):  # type: ignore[no-untyped-def]
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._answered += 1
            self._table.touch(self)
            if not self.linger:
                self.force_close()  # once the answer is out: nothing more will be read

    # ── The head deadline ─────────────────────────────────────────────────────
    def _set_head_deadline(self, *, sent: bool) -> None:
        self._clear_head_deadline()
        self._head_at = self._request_count
        self._head_sent = sent
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._table.header_timeout, self._head_late)

    def _clear_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport is None or self._request_count != self._head_at or self.busy:
            return
        limit = self._table.header_timeout
        if not self._head_sent:
            log.debug("Closing a connection from %s that sent nothing", self.client)
            self.force_close()
            return
        why = f"The request's headers did not arrive within API_HEADER_TIMEOUT_SECONDS={limit:g} s."
        self._table.refusals.refused(self.client, "header_timeout", why, 408)
        self._answer_and_close(408, why, "header_timeout")

    def _answer_and_close(
        self, status: int, message: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        if self.transport is not None:
            self.transport.write(raw_error(status, message, code, headers))
        self.force_close()

    # ── HTTP that cannot be parsed ────────────────────────────────────────────
    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error answers (unparsable HTTP, an escaped exception) as the API's
        JSON errors; refusals logged once per client and minute, without traceback."""
        if status >= 500:
            log.error("API request from %s failed", self.client, exc_info=exc)
            text, code = f"Internal error ({HTTPStatus(status).phrase}).", "internal_error"
        else:
            said = " ".join(str(message or exc or HTTPStatus(status).phrase).split())
            text, code = f"The request is not valid HTTP: {clip(said, 120)}", "bad_http"
            self._table.refusals.refused(self.client, code, text, status)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has begun; the connection is closed instead")
        resp = error_response(status, text, type_="invalid_request_error", code=code)
        resp.force_close()
        return resp


def mark_receiving(request: web.BaseRequest, receiving: bool) -> None:
    """Tell the connection table a request's body is being read (then its connection may
    be closed for room when it stalls longest)."""
    proto = request.protocol
    if isinstance(proto, GuardedHandler):
        proto.receiving = receiving


def close_after_answer(request: web.BaseRequest) -> None:
    """Close the connection as soon as the answer is out, instead of aiohttp's lingering
    (reading and dropping the rest of a refused body for up to 10 s, so a client still
    sending can read the answer): for a body that stalled, nothing more is coming."""
    proto = request.protocol
    if isinstance(proto, GuardedHandler):
        proto.linger = False


class GuardedSite(web.BaseSite):
    """A TCP site (as aiohttp's ``TCPSite``) whose connections are ``GuardedHandler``s."""

    __slots__ = ("_host", "_port", "_table", "_handler_args")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        table: ConnectionTable,
        *,
        backlog: int = ACCEPT_BACKLOG,
        **handler_args: Any,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._table = table
        self._handler_args = handler_args

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def _handler(self) -> GuardedHandler:
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        return GuardedHandler(server, self._table, loop=loop, **self._handler_args)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._handler, self._host, self._port, backlog=self._backlog
        )


OUT_OF_FILES = "socket.accept() out of system resource"


def watch_accept_errors(
    loop: asyncio.AbstractEventLoop, refusals: RefusalLog, limit: Callable[[], int | None]
) -> Callable[[], None]:
    """Replace asyncio's traceback for an ``accept()`` that failed for want of descriptors
    (logged for every try, one a second) by one warning a minute; other errors go to the
    handler that was there. Returns the function that puts it back."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(OUT_OF_FILES):
            exc = context.get("exception")
            refusals.warn(
                "out_of_files",
                f"The app is out of open files ({getattr(exc, 'strerror', None) or exc}; "
                f"the limit is {limit() or 'unknown'}): new API connections wait until some "
                "close. Raise the limit (ulimit -n) or lower API_MAX_OPEN_CONNECTIONS.",
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

    def restore() -> None:
        if loop.get_exception_handler() is handler:
            loop.set_exception_handler(previous)

    return restore
