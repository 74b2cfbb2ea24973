"""The one way the API posts to a llama-server: its per-start key added, once more on a fresh
connection when a kept-alive one was just closed, and a 502 that says why otherwise."""

from __future__ import annotations

from typing import Any

import aiohttp

from app.core.api.common import ApiContext, ApiError
from app.core.servers.keys import auth_headers, server_url


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
    assert c.upstream is not None
    st = c.lifecycle.manager.status(port)
    url = server_url(port, path, st)
    sent = {**(headers or {}), **auth_headers(st)}
    try:
        try:
            return await c.upstream.post(url, data=data, json=json, headers=sent)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            # A kept-alive connection llama-server had just closed: once more on a new one.
            return await c.upstream.post(url, data=data, json=json, headers=sent)
    except aiohttp.ClientError as e:
        raise ApiError(
            502,
            f"llama-server on port {port} did not answer ({e}). Read {c.log_path(port)}",
            type_="server_error",
            code="upstream_unreachable",
        ) from None
