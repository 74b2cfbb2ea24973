"""The one way the API posts to a llama-server: its per-start key added, once more on a fresh
connection when a kept-alive one was just closed, and a 502 that says why otherwise.

No request waits forever: each read from the server (the answer's head, then each part of
its body) may take at most ``UPSTREAM_READ_TIMEOUT_SECONDS`` (the time between two bytes,
not the whole answer: a long prompt is fine while tokens come). Past it the client gets 504
naming the model and the server is checked at once (``ModelLifecycle.suspect``). A server
declared hung has its requests in flight answered 503 with the reason (``inflight``)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import aiohttp

from app.core.api.common import ApiContext, ApiError, hung_error
from app.core.servers.keys import auth_headers, server_url

# The port of the last server the request being handled posted to: the API's error handler
# names its model when a read of the answer times out outside ``reading``.
UPSTREAM_PORT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "upstream_port", default=None
)


def read_timeout(c: ApiContext) -> aiohttp.ClientTimeout:
    limit = c.settings().UPSTREAM_READ_TIMEOUT_SECONDS
    return aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=limit or None)


def timed_out(c: ApiContext, port: int) -> ApiError:
    """The 504 for a server that sent nothing for the read timeout; checks it at once."""
    c.lifecycle.suspect(port)
    what = c.lifecycle.describe(c.lifecycle.manager.status(port))
    limit = c.settings().UPSTREAM_READ_TIMEOUT_SECONDS
    return ApiError(
        504,
        f"{what} sent nothing for {limit:g} s (UPSTREAM_READ_TIMEOUT_SECONDS); its server is "
        f"being checked. Read {c.log_path(port)}",
        type_="server_error",
        code="upstream_timeout",
    )


@contextlib.contextmanager
def reading(c: ApiContext, port: int) -> Iterator[None]:
    """Around the reads of an answer: a silence past the read timeout is a 504."""
    try:
        yield
    except aiohttp.ServerTimeoutError:
        raise timed_out(c, port) from None


async def post_upstream(
    c: ApiContext,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    data: bytes | None = None,
    json: dict[str, Any] | None = None,
) -> aiohttp.ClientResponse:
    """POST to llama-server on ``port`` (``path`` with its query string)."""
    assert c.links is not None
    st = c.lifecycle.manager.status(port)
    url = server_url(port, path, st)
    sent = {**(headers or {}), **auth_headers(st)}
    timeout = read_timeout(c)

    async def post() -> aiohttp.ClientResponse:
        assert c.links is not None
        try:
            return await c.links.session(port).post(
                url, data=data, json=json, headers=sent, timeout=timeout
            )
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            # A kept-alive connection llama-server had just closed: once more on a new one.
            return await c.links.session(port).post(
                url, data=data, json=json, headers=sent, timeout=timeout
            )

    UPSTREAM_PORT.set(port)
    task = asyncio.ensure_future(post())
    why_cancelled = c.inflight.posting(port, task)
    try:
        up = await task
    except asyncio.CancelledError:
        reason = why_cancelled()
        me = asyncio.current_task()
        if reason is not None and not (me is not None and me.cancelling()):
            raise hung_error(reason) from None  # its server was declared hung meanwhile
        raise
    except aiohttp.ServerTimeoutError:
        raise timed_out(c, port) from None
    except aiohttp.ClientError as e:
        raise ApiError(
            502,
            f"llama-server on port {port} did not answer ({e}). Read {c.log_path(port)}",
            type_="server_error",
            code="upstream_unreachable",
        ) from None
    c.inflight.answering(port, up)
    return up
