"""Requests for a peer's model (``<peer>/<model>``, see ``app/core/machines/peers.py``),
forwarded to the peer by one middleware after the guard and the key check, so they pass
the same guard as the app's own: inference on every route that names a model (OpenAI's,
Anthropic's, LM Studio's REST v0 and v1 chat, llama-server's own), loads and unloads
(LM Studio's REST API, where the peer has it). The answer streams back as it comes
(``proxy.relay``), the connection to the peer is closed when the client goes away (the
peer stops generating), and its speed is counted under the peer's name.

A peer that cannot be reached gets 502 naming it (and is shown offline at once); a request
that has passed through this app already gets 508 (a loop between apps that list each
other). This app's own key is never passed on: a peer gets its own, from ``PEERS``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from app.core.api import clients, proxy
from app.core.api.common import CONTEXT, ApiContext, ApiError, parse_json_object, upstream_message
from app.core.api.speed import Meter
from app.core.machines.peers import CHAIN_HEADER, INSTANCE_HEADER, PeerError, Peers, chain_of
from app.settings_types import PeerEntry

log = logging.getLogger(__name__)

LOAD, UNLOAD = "/api/v1/models/load", "/api/v1/models/unload"
# Where a peer without LM Studio's REST API answers a route of it (rest_v0's routes).
OPENAI_FOR = {
    "/api/v0/chat/completions": "/v1/chat/completions",
    "/api/v0/completions": "/v1/completions",
    "/api/v0/embeddings": "/v1/embeddings",
}
LMSTUDIO_CHAT = "/api/v1/chat"  # chat_v1's route
# The routes whose body (or ``model`` query) names the model they are for.
BY_MODEL = frozenset(
    (*proxy.FORWARDED, *clients.ANTHROPIC, *clients.OPENAI, *clients.LLAMA, *OPENAI_FOR)
) | {LMSTUDIO_CHAT}


@web.middleware
async def forward_to_peers(request: web.Request, handler) -> web.StreamResponse:
    """Send a request for a peer's model to the peer, refuse one that came back (a loop),
    and pass everything else to its handler."""
    c: ApiContext = request.app[CONTEXT]
    peers = c.peers
    path = request.path
    if peers is None or request.method != "POST":
        return await _answer(request, handler)
    try:
        chain = chain_of(request.headers.get(CHAIN_HEADER))
        if chain:  # from another app: refused if it has passed through this one
            peers.check_chain(chain, f"this request ({path})")
        if (path not in BY_MODEL and path not in (LOAD, UNLOAD)) or not peers.configured():
            return await _answer(request, handler)
        try:
            payload = parse_json_object(await request.read())
        except ApiError:
            return await _answer(request, handler)  # the handler says what is wrong
        field = "instance_id" if path == UNLOAD else "model"
        name = payload.get(field)
        if name is None and path in BY_MODEL:
            name = request.query.get("model")
        found = peers.find(name)
        if found is None or c.catalogue.find(name) is not None:  # the app's own model wins
            return await _answer(request, handler)
        entry, status, model = found
        if path in (LOAD, UNLOAD):
            return await _load(c, peers, entry, status.lmstudio, path, payload, field, model, chain)
        return await _forward(c, request, peers, entry, status.lmstudio, payload, model, chain)
    except PeerError as e:
        error = ApiError(e.status, str(e), type_="server_error", code=e.code)
        if path in clients.ANTHROPIC:
            return await clients.anthropic_errors(_raise(error))(request)
        raise error from None


async def _answer(request: web.Request, handler) -> web.StreamResponse:
    """The handler's answer, naming this app (so a peer that is this app knows it)."""
    resp = await handler(request)
    c: ApiContext = request.app[CONTEXT]
    if c.peers is not None and not resp.prepared:
        resp.headers[INSTANCE_HEADER] = c.peers.instance
    return resp


def _raise(error: ApiError):
    async def handler(request: web.Request) -> web.StreamResponse:
        raise error

    return handler


def _unreachable(peers: Peers, entry: PeerEntry, e: Exception) -> PeerError:
    why = str(e) or type(e).__name__
    peers.went_offline(entry, why)
    return PeerError(
        502,
        f"Peer {entry.name} ({entry.url}) is offline: {why}. Its models answer again when it does.",
        "peer_offline",
    )


async def _post(
    c: ApiContext, peers: Peers, entry: PeerEntry, path: str, body: bytes, headers: dict
) -> aiohttp.ClientResponse:
    assert c.upstream is not None
    try:
        return await c.upstream.post(entry.url + path, data=body, headers=headers)
    except aiohttp.ClientError as e:
        raise _unreachable(peers, entry, e) from None


async def _forward(
    c: ApiContext,
    request: web.Request,
    peers: Peers,
    entry: PeerEntry,
    lmstudio: bool,
    payload: dict[str, Any],
    model: str,
    chain: list[str],
) -> web.StreamResponse:
    path = request.path
    if not lmstudio and path in OPENAI_FOR:
        path = OPENAI_FOR[path]
    elif not lmstudio and path == LMSTUDIO_CHAT:
        raise PeerError(
            400,
            f"Peer {entry.name} has no LM Studio API for /api/v1/chat; ask it through "
            "/v1/chat/completions",
            "peer_unsupported",
        )
    if "model" in payload:
        payload = {**payload, "model": model}
    query = request.rel_url.query_string
    if "model" in request.query:
        query = request.rel_url.update_query(model=model).query_string
    headers = {"Content-Type": "application/json", **peers.headers(entry, chain)}
    if "Accept" in request.headers:
        headers["Accept"] = request.headers["Accept"]
    target = path + (f"?{query}" if query else "")
    up = await _post(c, peers, entry, target, json.dumps(payload).encode(), headers)
    if up.status == 508:
        body = await up.read()
        up.release()
        raise PeerError(508, upstream_message(body), "peer_loop")
    meter = Meter(c.stats, f"{entry.name}/{model}")
    return await proxy.relay(request, up, meter, who=f"Peer {entry.name} ({entry.url})")


async def _load(
    c: ApiContext,
    peers: Peers,
    entry: PeerEntry,
    lmstudio: bool,
    path: str,
    payload: dict[str, Any],
    field: str,
    model: str,
    chain: list[str],
) -> web.Response:
    verb = "load" if path == LOAD else "unload"
    if not lmstudio:
        raise PeerError(
            400,
            f"Peer {entry.name} ({entry.url}) has no LM Studio REST API to {verb} models "
            "with; it loads them itself when asked for them",
            "peer_unsupported",
        )
    headers = {"Content-Type": "application/json", **peers.headers(entry, chain)}
    body = json.dumps({**payload, field: model}).encode()
    up = await _post(c, peers, entry, path, body, headers)
    try:
        raw = await up.read()
    except aiohttp.ClientError as e:
        raise _unreachable(peers, entry, e) from None
    finally:
        up.release()
    peers.changed()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or up.status >= 400:
        if up.status == 508:
            raise PeerError(508, upstream_message(raw), "peer_loop")
        return web.Response(status=up.status, body=raw, content_type="application/json")
    for key in ("instance_id", "model_instance_id"):
        if isinstance(data.get(key), str):
            data[key] = f"{entry.name}/{data[key]}"
    return web.json_response(data, status=up.status)
