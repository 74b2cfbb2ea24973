"""``GET /api/v0/stats``: each model's live speed (the proxy's ``SpeedStats``), for
``familylog-tray --ps`` and any client; ``POST /api/v0/stats/reset`` clears it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.core.api.common import CONTEXT, ApiContext, ApiError, parse_json_object, shown
from app.core.models.stats import ModelStats, speed_fields


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def model_stats(key: str, st: ModelStats | None, loaded: bool) -> dict[str, Any]:
    last = st.last if st is not None else None
    return {
        "model": key,
        "loaded": loaded,
        **speed_fields(st),
        "prompt_tokens": st.prompt_tokens if st is not None else 0,
        "first_byte_ms": _round(st.first_byte_ms) if st is not None else None,
        "last": None
        if last is None
        else {
            "generation_tokens_per_second": _round(last.generation_tokens_per_second),
            "prompt_tokens_per_second": _round(last.prompt_tokens_per_second),
            "time_to_first_token_ms": _round(last.prompt_ms),
            "first_byte_ms": _round(last.first_byte_ms),
            "tokens": last.tokens,
            "prompt_tokens": last.prompt_tokens,
        },
        "history": [round(v, 1) for v in st.history()] if st is not None else [],
    }


def _loaded(c: ApiContext) -> set[str]:
    return {i.key for i in c.lifecycle.loaded()}


async def list_stats(request: web.Request) -> web.Response:
    """Every model that was loaded or served since the start (or the last reset)."""
    c: ApiContext = request.app[CONTEXT]
    loaded = _loaded(c)
    every = c.stats.all()
    keys = sorted(loaded | set(every))
    data = [model_stats(k, every.get(k), k in loaded) for k in keys]
    return web.json_response({"object": "list", "data": data})


async def get_stats(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    name = request.match_info["model"]
    entry = c.catalogue.find(name)
    key = entry.key if entry is not None else name
    st = c.stats.get(key)
    if st is None and entry is None:
        raise ApiError(404, f"No statistics for {shown(name)}", code="model_not_found")
    return web.json_response(model_stats(key, st, key in _loaded(c)))


async def reset_stats(request: web.Request) -> web.Response:
    """``{"model": KEY}`` clears one model's figures; an empty body clears them all."""
    c: ApiContext = request.app[CONTEXT]
    raw = await request.read()
    model = None
    if raw.strip():
        model = parse_json_object(raw).get("model")
        if model is not None and not isinstance(model, str):
            raise ApiError(400, '"model" must be a string', code="bad_model")
    if model is not None:
        entry = c.catalogue.find(model)
        model = entry.key if entry is not None else model
    cleared = c.stats.reset(model)
    return web.json_response({"reset": cleared})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v0/stats", list_stats)
    app.router.add_post("/api/v0/stats/reset", reset_stats)
    app.router.add_get("/api/v0/stats/{model:.+}", get_stats)
