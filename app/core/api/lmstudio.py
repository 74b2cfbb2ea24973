"""LM Studio's REST API: v1 (``/api/v1/models``, load, unload) and the older v0 list."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from app.core.api.common import CONTEXT, ApiContext, ApiError, parse_json_object
from app.core.api.jit import LoadFailedError
from app.core.models.catalogue import CatalogueEntry, UnknownModelError
from app.core.servers.states import ServerStatus


def _ctx_of(entry: CatalogueEntry, st: ServerStatus) -> int | None:
    ctx = st.spec.ctx_size if st.spec else 0
    return ctx or entry.max_context_length


def model_v1(entry: CatalogueEntry, st: ServerStatus | None) -> dict[str, Any]:
    info = entry.info
    quant = None
    if info and info.quantization:
        quant = {"name": info.quantization, "bits_per_weight": info.bits_per_weight}
    instances = []
    if st is not None:
        instances.append({"id": entry.key, "config": {"context_length": _ctx_of(entry, st)}})
    return {
        "type": "llm",
        "publisher": entry.publisher,
        "key": entry.key,
        "display_name": entry.display_name,
        "architecture": info.architecture if info else None,
        "quantization": quant,
        "size_bytes": entry.size_bytes,
        "params_string": info.params_string if info else None,
        "loaded_instances": instances,
        "max_context_length": entry.max_context_length,
        "format": "gguf",
        "capabilities": {
            "vision": entry.vision,
            "trained_for_tool_use": bool(info and info.tool_use),
        },
        "description": None,
    }


def model_v0(entry: CatalogueEntry, st: ServerStatus | None) -> dict[str, Any]:
    info = entry.info
    out: dict[str, Any] = {
        "id": entry.key,
        "object": "model",
        "type": "vlm" if entry.vision else "llm",
        "publisher": entry.publisher,
        "arch": info.architecture if info else None,
        "compatibility_type": "gguf",
        "quantization": info.quantization if info else None,
        "state": "loaded" if st is not None else "not-loaded",
        "max_context_length": entry.max_context_length,
    }
    if st is not None:
        out["loaded_context_length"] = _ctx_of(entry, st)
    return out


def _unknown(e: UnknownModelError) -> ApiError:
    return ApiError(404, str(e), code="model_not_found", known_models=e.known)


async def list_v1(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    entries = await c.catalogue.entries_async()
    return web.json_response({"models": [model_v1(e, c.pool.ready(e.profile)) for e in entries]})


async def list_v0(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    entries = await c.catalogue.entries_async()
    data = [model_v0(e, c.pool.ready(e.profile)) for e in entries]
    return web.json_response({"object": "list", "data": data})


async def get_v0(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    try:
        profile = c.catalogue.resolve(request.match_info["model"])
    except UnknownModelError as e:
        raise _unknown(e) from None
    entry = c.catalogue.entry(profile)
    return web.json_response(model_v0(entry, c.pool.ready(profile)))


def _context_length(body: dict[str, Any]) -> int | None:
    config = body.get("config")
    if config is not None and not isinstance(config, dict):
        raise ApiError(400, '"config" must be a JSON object, e.g. {"context_length": 8192}')
    value = (config or {}).get("context_length", body.get("context_length"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f'"context_length" must be a whole number >= 0, not {value!r}')
    return value


async def load_v1(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    body = parse_json_object(await request.read())
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(
            400,
            'Say which model to load: {"model": "<key>"}. Known models: '
            + (", ".join(c.catalogue.known_keys()) or "none"),
            code="missing_model",
        )
    ctx = _context_length(body)
    try:
        profile = c.catalogue.resolve(name)
    except UnknownModelError as e:
        raise _unknown(e) from None
    start = time.monotonic()
    was = c.pool.ready(profile)
    try:
        st = await c.pool.ensure_loaded(profile, ctx)
    except LoadFailedError as e:
        raise ApiError(503, str(e), type_="server_error", code="model_load_failed") from None
    took = 0.0 if st is was else time.monotonic() - start
    entry = c.catalogue.entry(profile)
    config = {"context_length": _ctx_of(entry, st)}
    return web.json_response(
        {
            "type": "llm",
            "instance_id": entry.key,
            "model_instance_id": entry.key,
            "status": "loaded",
            "load_time_seconds": round(took, 3),
            "config": config,
            "load_config": config,
        }
    )


async def unload_v1(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    body = parse_json_object(await request.read())
    name = body.get("instance_id")
    if not isinstance(name, str) or not name:
        raise ApiError(
            400, 'Say which instance to unload: {"instance_id": "<id>"}', code="missing_instance"
        )
    profile = c.catalogue.find(name)
    if profile is None or c.pool.ready(profile) is None:
        loaded = [p.model_id for p, _ in c.pool.loaded()]
        raise ApiError(
            404,
            f"No loaded model instance '{name}'. Loaded: {', '.join(loaded) or 'none'}",
            code="instance_not_found",
            loaded_instances=loaded,
        )
    await c.pool.unload(profile)
    return web.json_response({"instance_id": name})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/models", list_v1)
    app.router.add_post("/api/v1/models/load", load_v1)
    app.router.add_post("/api/v1/models/unload", unload_v1)
    app.router.add_get("/api/v0/models", list_v0)
    app.router.add_get("/api/v0/models/{model:.+}", get_v0)
