"""The OpenAI-compatible routes, forwarded to the llama-server that serves the request's model.

Bodies go through unchanged both ways, but for llama-server's 500 (its answer to input it
cannot handle, e.g. an Anthropic request without ``messages``): that becomes a 502 with
its message, so a 500 from this API is always the app's own fault. A streamed answer (no Content-Length from
llama-server: SSE) is written to the client chunk by chunk as it arrives; when the client
goes away the handler is cancelled and the upstream connection is closed, which stops
llama-server's generation.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from app.core.api import peer_models
from app.core.api.common import (
    CONTEXT,
    ApiContext,
    ApiError,
    model_not_found,
    parse_json_object,
    shown,
    upstream_message,
)
from app.core.api.images import check_images
from app.core.api.kinds import check_kind, serves
from app.core.api.load_config import parse_ttl
from app.core.api.speed import Meter
from app.core.api.upstream import post_upstream, reading
from app.core.lifecycle.instance import BusyError, LoadFailedError, ModelNotLoadedError
from app.core.models.catalogue import UnknownModelError
from app.core.models.entry import ModelEntry

log = logging.getLogger(__name__)

FORWARDED = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Transfer-Encoding",
        "Content-Length",
        "Date",
        "Server",
        "Proxy-Authenticate",
        "Trailer",
        "Upgrade",
    )
)


ModelName = Callable[[web.Request, dict[str, Any]], object]  # (request, body) -> the model named


def openai_model(entry: ModelEntry) -> dict[str, str]:
    return {"id": entry.key, "object": "model", "owned_by": entry.publisher}


async def list_models(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    data = [openai_model(e) for e in c.catalogue.entries()]
    data += [peer_models.model_openai(c, m) for m in peer_models.listed(c, request)]
    return web.json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}``: one model, by key or alias (OpenAI's retrieve)."""
    c: ApiContext = request.app[CONTEXT]
    name = request.match_info["model"]
    try:
        entry = c.catalogue.resolve(name)
    except UnknownModelError as e:
        raise model_not_found(e, param="model") from None
    return web.json_response(openai_model(entry))


def pick_model(c: ApiContext, name: object, path: str | None = None) -> ModelEntry:
    """The model a request is for: its key or alias; else the only loaded model that can
    serve ``path`` (as LM Studio uses its one loaded model)."""
    if name is not None and not isinstance(name, str):
        raise ApiError(400, f'"model" must be a string, not {shown(name)}', code="bad_model")
    found = c.catalogue.find(name)
    if found is not None:
        return found
    loaded = [i.entry for i in c.lifecycle.loaded() if i.entry is not None]
    fits = [e for e in loaded if path is None or serves(e, path)]
    if len(fits) == 1:
        return fits[0]
    known = c.catalogue.known_keys()
    now = ""
    if loaded:
        now = ". Loaded now: " + ", ".join(f"{e.key} ({e.type})" for e in loaded)
        now += f", none of which serves {path}." if path and not fits else "."
    if not name:
        if len(known) == 1:
            return c.catalogue.resolve(known[0])
        raise ApiError(
            400,
            'The request names no model; set "model" to one of: '
            + (", ".join(known) or "none")
            + now,
            code="missing_model",
            known_models=known,
        )
    e = UnknownModelError(name, known)
    raise ApiError(404, str(e) + now, code="model_not_found", known_models=known)


async def forward(request: web.Request, *, model: ModelName | None = None) -> web.StreamResponse:
    """Forward the request to the llama-server of its model (JIT-loaded); ``model(request,
    payload)``: the model it names, where that is not only the body's ``model``."""
    c: ApiContext = request.app[CONTEXT]
    raw = await request.read()
    payload = parse_json_object(raw)
    if await check_images(payload, allow_urls=c.settings().API_ALLOW_IMAGE_URLS):
        raw = json.dumps(payload).encode()  # an image was turned upright
    ttl = parse_ttl(payload)
    name = payload.get("model") if model is None else model(request, payload)
    entry = pick_model(c, name, request.path)
    check_kind(entry, request.path)  # a chat to an embedding model: 400, with why
    return await relay_to(c, request, raw, entry, ttl)


async def relay_to(
    c: ApiContext,
    request: web.Request,
    raw: bytes,
    entry: ModelEntry,
    ttl: float | None,
    observe: Callable[[bytes], None] | None = None,
) -> web.StreamResponse:
    """Relay ``raw`` to ``entry``'s llama-server, holding it through the lifecycle (loaded
    first when JIT_LOAD is on; ``ttl``: its idle unload from now on)."""
    try:
        async with c.lifecycle.holding(entry, jit=c.settings().JIT_LOAD) as inst:
            if ttl is not None:
                c.lifecycle.set_ttl(inst.port, ttl)
            return await _relay(c, request, raw, inst.port, key=inst.key, observe=observe)
    except ModelNotLoadedError as e:
        raise ApiError(400, str(e), code="model_not_loaded") from None
    except BusyError as e:  # documented: the model in the way stayed busy past the wait
        raise ApiError(503, str(e), type_="server_error", code="model_busy") from None
    except LoadFailedError as e:
        raise ApiError(503, str(e), type_="server_error", code="model_load_failed") from None


async def _relay(
    c: ApiContext,
    request: web.Request,
    raw: bytes,
    port: int,
    key: str | None = None,
    observe: Callable[[bytes], None] | None = None,
) -> web.StreamResponse:
    """Send ``raw`` to llama-server on ``port`` and its answer back as it comes; ``observe``
    sees the body of a successful answer (each chunk of a stream) after it went out."""
    meter = Meter(c.stats, key)  # speed statistics from llama-server's timings (speed.py)
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    if "Accept" in request.headers:
        headers["Accept"] = request.headers["Accept"]
    workers = c.workers
    lost = (lambda: workers.lost_on_port(port)) if workers is not None else None
    try:
        up = await post_upstream(c, port, str(request.rel_url), headers, data=raw)
    except ApiError as e:
        raise await _worker_lost(e, lost) from None
    return await relay(
        request,
        up,
        meter,
        who=f"llama-server on port {port}",
        hint=f" Read {c.log_path(port)}",
        lost=lost,
        observe=observe,
        reads=lambda: reading(c, port),
    )


Lost = Callable[[], Awaitable[str | None]]


async def _worker_lost(e: ApiError, lost: Lost | None) -> ApiError:
    """``e``, or a 503 naming the RPC worker whose loss broke the model's server."""
    why = await lost() if lost is not None and e.status == 502 else None
    if why is None:
        return e
    return ApiError(
        503,
        f"{why}: the model's server failed with it. Send the request again: the model is "
        "loaded again, here or on the workers left, when it fits.",
        type_="server_error",
        code="rpc_worker_lost",
    )


async def relay(
    request: web.Request,
    up: aiohttp.ClientResponse,
    meter: Meter,
    *,
    who: str,
    hint: str = "",
    lost: Lost | None = None,
    observe: Callable[[bytes], None] | None = None,
    reads: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> web.StreamResponse:
    """Pass ``up`` (the answer of ``who``: a llama-server, a peer) to the client: whole, or
    chunk by chunk as it arrives (SSE), feeding ``meter``; ``observe`` sees the body of a
    successful answer (each chunk of a stream) after it went out. When the answer breaks
    off, ``lost`` may name an RPC worker that is gone (a 503, or an error event in a stream
    already begun). ``reads`` is around the reads of the answer: a llama-server's silence
    past the read timeout (``upstream.reading``) ends it with a 504 or an error event."""
    resp: web.StreamResponse | None = None
    try:
        out_headers = CIMultiDict(
            (k, v) for k, v in up.headers.items() if k.lower() not in _HOP_BY_HOP
        )
        if up.content_length is not None:
            with reads():
                body = await up.read()
            if up.status == 500:  # llama-server's answer to a request it could not handle
                raise ApiError(
                    502,
                    f"{who} could not answer: {upstream_message(body)}",
                    type_="server_error",
                    code="upstream_error",
                )
            if up.status < 400:
                meter.body(body)
                if observe is not None:
                    observe(body)
            return web.Response(status=up.status, body=body, headers=out_headers)
        resp = web.StreamResponse(status=up.status, headers=out_headers)
        await resp.prepare(request)
        try:
            with reads():
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                    meter.chunk(chunk)
                    if observe is not None and up.status < 400:
                        observe(chunk)
        except ApiError as e:  # silent (504) or hung (503) mid-stream: say so, then end it
            log.warning("Streaming from %s ended: %s", who, e.message)
            if "text/event-stream" in up.headers.get("Content-Type", ""):
                error = {"error": {"message": e.message, "type": e.type, "code": e.code}}
                await resp.write(f"data: {json.dumps(error)}\n\n".encode())
            up.close()
            await resp.write_eof()
            return resp
        await resp.write_eof()
        if up.status < 400:
            meter.done()
        # llama-server closes the connection after a streamed answer; pooling it would make
        # the next request try a dead connection first, then reconnect (about 1 ms).
        up.close()
        return resp
    except aiohttp.ClientError as e:
        up.close()
        broke = ApiError(
            502,
            f"{who} broke off its answer ({e}).{hint}",
            type_="server_error",
            code="upstream_failed",
        )
        error = await _worker_lost(broke, lost)
        if resp is None:
            raise error from None
        if error is broke:
            raise  # the answer has begun: all that is left is to cut the connection
        # a stream begun: its last event says why it ends, then it ends
        event = {"error": {"message": error.message, "type": error.type, "code": error.code}}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write(f"data: {json.dumps(event)}\n\n".encode())
            await resp.write_eof()
        return resp
    except BaseException:
        up.close()  # drop the connection: llama-server stops generating for it
        raise
    finally:
        up.release()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    for path in FORWARDED:
        app.router.add_post(path, forward)
