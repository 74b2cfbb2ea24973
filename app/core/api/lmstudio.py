"""LM Studio's REST API: v1 (``/api/v1/models``, load, unload) and the older v0 list."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from app.core.api import peer_models
from app.core.api.common import (
    CONTEXT,
    ApiContext,
    ApiError,
    model_not_found,
    parse_json_object,
    shown,
)
from app.core.api.load_config import config_json, parse_load_config, parse_ttl
from app.core.lifecycle.instance import BusyError, Instance, LoadFailedError, config_differs
from app.core.models.catalogue import UnknownModelError
from app.core.models.entry import ModelEntry
from app.core.models.launch_args import LoadConfig

V0_TYPES = {"llm": "llm", "embedding": "embeddings", "reranker": "embeddings"}


def model_v1(entry: ModelEntry, inst: Instance | None) -> dict[str, Any]:
    info = entry.info
    quant = None
    if entry.quant:
        quant = {"name": entry.quant, "bits_per_weight": info.bits_per_weight if info else None}
    instances = []
    if inst is not None:
        config = config_json(inst.config, entry.type == "llm")
        instances.append({"id": entry.key, "config": config})
    return {
        "type": "embedding" if entry.type != "llm" else "llm",
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


def capabilities(entry: ModelEntry) -> list[str]:
    """``tool_use`` when the chat template takes tools, ``vision`` with an mmproj paired."""
    out = []
    if entry.type == "llm" and entry.info is not None and entry.info.tool_use:
        out.append("tool_use")
    if entry.vision:
        out.append("vision")
    return out


def model_v0(entry: ModelEntry, inst: Instance | None) -> dict[str, Any]:
    info = entry.info
    kind = "vlm" if entry.vision else V0_TYPES.get(entry.type, "llm")
    out: dict[str, Any] = {
        "id": entry.key,
        "object": "model",
        "type": kind,
        "publisher": entry.publisher,
        "arch": info.architecture if info else None,
        "compatibility_type": "gguf",
        "quantization": entry.quant,
        "state": "loaded" if inst is not None else "not-loaded",
        "max_context_length": entry.max_context_length,
        # LM Studio's: some editors send tools or images only to a model that lists them
        "capabilities": capabilities(entry),
    }
    if inst is not None:
        out["loaded_context_length"] = inst.context_length
        # not LM Studio's: what the instance actually runs with, by models.ini's keys
        out["loaded_settings"] = inst.settings.by_key()
    return out


def _loaded(c: ApiContext) -> dict[str, Instance]:
    return {i.key: i for i in c.lifecycle.loaded()}


async def list_v1(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    loaded = _loaded(c)
    models = [model_v1(e, loaded.get(e.key)) for e in c.catalogue.entries()]
    models += [peer_models.model_v1(c, m) for m in peer_models.listed(c, request)]
    return web.json_response({"models": models})


async def list_v0(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    loaded = _loaded(c)
    data = [model_v0(e, loaded.get(e.key)) for e in c.catalogue.entries()]
    data += [peer_models.model_v0(c, m) for m in peer_models.listed(c, request)]
    return web.json_response({"object": "list", "data": data})


async def get_v0(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    name = request.match_info["model"]
    try:
        entry = c.catalogue.resolve(name)
    except UnknownModelError as e:
        peer = next((m for m in peer_models.listed(c, request) if m.key == name), None)
        if peer is not None:
            return web.json_response(peer_models.model_v0(c, peer))
        raise model_not_found(e) from None
    return web.json_response(model_v0(entry, c.lifecycle.ready(entry)))


def refuse_busy_reload(was: Instance | None, entry: ModelEntry, config: LoadConfig) -> None:
    """A 409 when ``entry`` is busy and loaded with another config: LM Studio cannot load a
    model in use again either, so say so rather than wait."""
    if was is None or not (was.in_flight or was.held_by):
        return
    differs = config_differs(was.status, config)
    if differs:
        why = f"serving {was.in_flight} request(s)" if was.in_flight else "held by a run"
        raise ApiError(
            409,
            f"{entry.key} is loaded with another {', '.join(differs)} and is busy ({why}); "
            "it can be loaded again with the new config once it is idle.",
            code="model_busy",
        )


def _named(body: dict[str, Any], field: str, missing: str, code: str) -> str:
    """The non-empty string ``body[field]``, or a 400 saying ``missing``."""
    name = body.get(field)
    if not isinstance(name, str) or not name:
        raise ApiError(400, missing, code=code)
    return name


async def load_v1(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    body = parse_json_object(await request.read())
    known = ", ".join(c.catalogue.known_keys()) or "none"
    say = 'Say which model to load: {"model": "<key>"}. Known models: ' + known
    name = _named(body, "model", say, "missing_model")
    config = parse_load_config(body)
    ttl = parse_ttl(body)
    echo = body.get("echo_load_config", False)
    try:
        entry = c.catalogue.resolve(name)
    except UnknownModelError as e:
        raise model_not_found(e) from None
    start = time.monotonic()
    was = c.lifecycle.ready(entry)
    refuse_busy_reload(was, entry, config)
    try:
        inst = await c.lifecycle.ensure(entry, config)
    except BusyError as e:
        raise ApiError(503, str(e), type_="server_error", code="model_busy") from None
    except LoadFailedError as e:
        raise ApiError(503, str(e), type_="server_error", code="model_load_failed") from None
    if ttl is not None:
        c.lifecycle.set_ttl(inst.port, ttl)
    took = 0.0 if was is not None and was.pid == inst.pid else time.monotonic() - start
    out = {
        "type": "embedding" if entry.type != "llm" else "llm",
        "instance_id": entry.key,
        "model_instance_id": entry.key,
        "status": "loaded",
        "load_time_seconds": round(took, 3),
        "config": config_json(inst.config, entry.type == "llm"),  # ours, kept for old clients
    }
    if echo is True:
        out["load_config"] = out["config"]
    return web.json_response(out)


async def unload_v1(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    body = parse_json_object(await request.read())
    say = 'Say which instance to unload: {"instance_id": "<id>"}'
    name = _named(body, "instance_id", say, "missing_instance")
    entry = c.catalogue.find(name)
    if entry is None or c.lifecycle.instance(entry) is None:
        loaded = [i.key for i in c.lifecycle.loaded()]
        raise ApiError(
            404,
            f"No loaded model instance {shown(name)}. Loaded: {', '.join(loaded) or 'none'}",
            code="instance_not_found",
            loaded_instances=loaded,
        )
    await c.lifecycle.unload(entry)
    return web.json_response({"instance_id": name})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/models", list_v1)
    app.router.add_post("/api/v1/models/load", load_v1)
    app.router.add_post("/api/v1/models/unload", unload_v1)
    app.router.add_get("/api/v0/models", list_v0)
    app.router.add_get("/api/v0/models/{model:.+}", get_v0)
