"""Reading a request body within its limits, and inflating a compressed one.

A body is read only after the request's headers passed the guard (Host, Origin, key), so
an unauthorised client never gets a byte read. Then:

- a declared length over ``API_MAX_BODY_MB`` gets 413 at once; a ``Content-Encoding`` other
  than gzip or deflate (or any, with ``API_ACCEPT_COMPRESSED=false``) gets 415;
- a body still arriving takes one of its client address's places for unfinished requests
  (``API_MAX_PENDING_PER_CLIENT``, and ``API_MAX_CONNECTIONS`` over all clients). It must
  start within ``API_BODY_STALL_SECONDS``, never pause longer than that, and be complete
  within ``API_BODY_TIMEOUT_SECONDS`` (408 otherwise). A request that finds no place is
  not refused at once: it is not read, and passes if its body arrives by itself (aiohttp
  buffers up to 128 KiB per connection) within ``NO_PLACE_GRACE`` seconds; else 429
  (the client's places are taken) or 503 (all are). So clients that send whole requests
  are answered whatever other connections hold, and each stalled request ties up at most
  one place for a few seconds;
- a gzip or deflate body is inflated off the event loop, a chunk at a time, and refused
  with 413 the moment it grows past ``API_MAX_BODY_MB``; at most ``INFLATING`` bodies are
  inflated at once, each holding at most twice ``API_MAX_BODY_MB`` while it is.

The body read is what the handlers' ``request.read()`` then returns.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from app.core.api.connections import mark_receiving

NO_PLACE_GRACE = 2.0  # seconds a request without a place may take for its body to arrive
INFLATING = 2  # compressed bodies inflated at once (threads)
INFLATE_STEP = 256 * 1024  # bytes inflated per step, checked against the cap after each
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    max_mb: float
    timeout: float  # the whole body
    stall: float  # its first byte, and any pause
    per_client: int  # unfinished requests per client address
    pending: int  # unfinished requests over all clients
    compressed: bool  # gzip and deflate accepted


class Refusal(Exception):
    """A body that cannot be taken: status, code, message; the connection is closed after."""

    def __init__(
        self, status: int, code: str, message: str, *, stalled: bool = False, **headers: str
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.stalled = stalled  # the body stopped coming: close at once, drain nothing
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


class TooLarge(Exception):
    pass


def inflate(data: bytes, encoding: str, cap: int) -> bytes:
    """``data`` inflated, a step at a time; ``TooLarge`` past ``cap`` bytes, ``ValueError``
    when it is not valid gzip or deflate. Runs in a thread: zlib lets go of the GIL."""
    out = bytearray()
    try:
        _inflate_into(out, data, encoding, cap)
    except (TooLarge, ValueError):
        out.clear()  # the error's traceback keeps this frame alive a while: hold nothing
        raise
    return bytes(out)


def _inflate_into(out: bytearray, data: bytes, encoding: str, cap: int) -> None:
    wbits = ENCODINGS[encoding]
    if wbits == 0:  # deflate: zlib-wrapped as the RFC says, or raw as some clients send it
        wbits = zlib.MAX_WBITS if data[:1] and data[0] & 0x0F == 8 else -zlib.MAX_WBITS
    rest = data
    while True:
        d = zlib.decompressobj(wbits)
        try:
            while not d.eof:
                chunk = d.decompress(rest, INFLATE_STEP)
                rest = d.unconsumed_tail
                out += chunk
                if len(out) > cap:
                    raise TooLarge
                if not chunk and not rest and not d.eof:
                    raise ValueError("the compressed body ends early")
        except zlib.error as e:
            raise ValueError(str(e)) from None
        rest = d.unused_data
        if not rest or wbits != ENCODINGS["gzip"]:
            return  # gzip may hold several members, one after the other


def _cache_body(request: web.BaseRequest, body: bytes) -> None:
    """Make ``request.read()`` (and ``.json()``, ``.text()``) return ``body``.

    aiohttp keeps the body it read in ``_read_bytes``; the guard reads it itself (with its
    deadlines, and to inflate it), so it puts it there. tests/api/test_abuse.py checks that
    the handlers get it."""
    request._read_bytes = body  # type: ignore[attr-defined]


class BodyReader:
    """The body limits of one API server, and its places for unfinished requests."""

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self._pending: Counter[str] = Counter()  # per client address
        self.pending = 0  # over all clients
        self._inflating = asyncio.Semaphore(INFLATING)

    def too_large(self) -> Refusal:
        return Refusal(
            413,
            "body_too_large",
            f"The request body is larger than API_MAX_BODY_MB={self.limits.max_mb:g} MiB. "
            "Send smaller images or raise API_MAX_BODY_MB.",
        )

    def check_head(self, request: web.BaseRequest) -> str | None:
        """What the headers say about the body, before any of it is read: raises
        ``Refusal``; returns the content encoding to undo (None: none)."""
        length = request.content_length
        if length is not None and length > self.limits.max_bytes:
            raise self.too_large()
        if not request.body_exists:
            return None
        encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
        if not encoding or encoding == "identity":
            return None
        if not self.limits.compressed:
            raise Refusal(
                415,
                "encoding_not_accepted",
                f"Compressed request bodies (Content-Encoding: {encoding[:20]}) are turned off "
                "(API_ACCEPT_COMPRESSED=false); send the body uncompressed.",
            )
        if encoding not in ENCODINGS:
            raise Refusal(
                415,
                "encoding_not_accepted",
                f"Content-Encoding {encoding[:20]!r} is not accepted; send the body "
                "uncompressed, or compressed with gzip or deflate (API_ACCEPT_COMPRESSED).",
            )
        return encoding

    async def read(self, request: web.BaseRequest) -> None:
        """Read (and inflate) the body into aiohttp's cache, or raise ``Refusal``."""
        encoding = self.check_head(request)
        if not request.body_exists:
            return
        content = request.content
        if content.is_eof():
            body = await self._take(request)  # all of it is here: nothing to wait for
        else:
            client = request.remote or "?"
            if self._pending[client] >= self.limits.per_client or self.pending >= (
                self.limits.pending
            ):
                await self._arrives_anyway(request, client)
                body = await self._take(request)
            else:
                self._pending[client] += 1
                self.pending += 1
                mark_receiving(request, True)
                try:
                    body = await self._take(request)
                finally:
                    mark_receiving(request, False)
                    self.pending -= 1
                    self._pending[client] -= 1
                    if not self._pending[client]:
                        del self._pending[client]
        if encoding is not None and body:
            body = await self._inflate(body, encoding)
        _cache_body(request, body)

    async def _arrives_anyway(self, request: web.BaseRequest, client: str) -> None:
        """A request without a place passes if its body arrives within the grace, unread."""
        try:
            async with asyncio.timeout(NO_PLACE_GRACE):
                await request.content.wait_eof()
        except TimeoutError:
            if self._pending[client] >= self.limits.per_client:
                raise Refusal(
                    429,
                    "too_many_pending",
                    f"{self._pending[client]} requests from {client} are still sending their "
                    f"bodies (API_MAX_PENDING_PER_CLIENT={self.limits.per_client}), and this "
                    f"one's did not arrive within {NO_PLACE_GRACE:g} s. Send whole requests, "
                    "or try again when those have finished.",
                    stalled=True,
                    Retry_After="1",
                ) from None
            raise Refusal(
                503,
                "too_many_pending",
                f"{self.pending} requests are still sending their bodies (as many as "
                f"API_MAX_CONNECTIONS={self.limits.pending} allows), and this one's did not "
                f"arrive within {NO_PLACE_GRACE:g} s. Try again in a moment.",
                stalled=True,
                Retry_After="1",
            ) from None

    async def _take(self, request: web.BaseRequest) -> bytes:
        """The body, chunk by chunk, within the size cap and the deadlines."""
        limits = self.limits
        content = request.content
        body = bytearray()
        try:
            async with asyncio.timeout(limits.timeout):
                while True:
                    try:
                        async with asyncio.timeout(limits.stall):
                            chunk = await content.readany()
                    except (HttpProcessingError, RequestPayloadError) as e:
                        raise Refusal(
                            400,
                            "bad_body",
                            f"The request body is malformed or incomplete: {str(e)[:120]}",
                        ) from None
                    except TimeoutError:
                        what = "did not start" if not body else "stopped"
                        raise Refusal(
                            408,
                            "body_stalled",
                            f"The request body {what} for API_BODY_STALL_SECONDS="
                            f"{limits.stall:g} s.",
                            stalled=True,
                        ) from None
                    if not chunk:
                        return bytes(body)
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise self.too_large()
        except TimeoutError:
            raise Refusal(
                408,
                "body_timeout",
                f"The request body did not arrive within API_BODY_TIMEOUT_SECONDS="
                f"{limits.timeout:g} s.",
                stalled=True,
            ) from None

    async def _inflate(self, body: bytes, encoding: str) -> bytes:
        async with self._inflating:
            work = asyncio.ensure_future(
                asyncio.to_thread(inflate, body, encoding, self.limits.max_bytes)
            )
            try:
                # a client that goes away does not free the place before the thread is done
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                await asyncio.wait({work})
                raise
            except TooLarge:
                raise Refusal(
                    413,
                    "body_too_large",
                    f"The request body inflates to more than API_MAX_BODY_MB="
                    f"{self.limits.max_mb:g} MiB. Send less, or raise API_MAX_BODY_MB.",
                ) from None
            except ValueError as e:
                raise Refusal(
                    400,
                    "bad_encoding",
                    f"The request body is not valid {encoding} ({str(e)[:80]}); send it "
                    "uncompressed or compressed correctly.",
                ) from None
            finally:
                # the task keeps its error, whose traceback keeps this frame: without this
                # the two hold each other (and the body) until a garbage collection
                del work
