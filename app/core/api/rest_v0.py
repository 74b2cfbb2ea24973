"""LM Studio's REST v0 inference: ``POST /api/v0/chat/completions``, ``/api/v0/completions``
and ``/api/v0/embeddings``, streamed or not, built on llama-server's OpenAI endpoints.

The answer is llama-server's, named by the model's key, with LM Studio's additions:
``stats`` (from llama-server's ``timings``), ``model_info`` (from the GGUF header) and
``runtime``. A stream gets them on its last chunk (the one with ``timings``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from app.core.api.common import (
    CONTEXT,
    ApiContext,
    ApiError,
    parse_json_object,
    upstream_error,
    upstream_object,
)
from app.core.api.images import check_images
from app.core.api.kinds import check_kind
from app.core.api.load_config import parse_ttl
from app.core.api.speed import Meter
from app.core.api.upstream import post_upstream
from app.core.lifecycle.instance import Instance, LoadFailedError, ModelNotLoadedError
from app.core.models.entry import ModelEntry
from app.core.servers.keys import auth_headers, server_url

log = logging.getLogger(__name__)

RUNTIME_NAME = "llama.cpp-llama-server"
STOP_REASONS = {
    "stop": "eosFound",
    "length": "maxPredictedTokensReached",
    "tool_calls": "toolCalls",
}
_BUILDS: dict[tuple[int, int | None], str] = {}  # llama-server's build, per port and PID


def stats(timings: dict[str, Any] | None, finish_reason: str | None) -> dict[str, Any]:
    t = timings or {}
    return {
        "tokens_per_second": t.get("predicted_per_second"),
        "time_to_first_token": round(t["prompt_ms"] / 1000, 4) if "prompt_ms" in t else None,
        "generation_time": round(t["predicted_ms"] / 1000, 4) if "predicted_ms" in t else None,
        "stop_reason": STOP_REASONS.get(finish_reason or "", finish_reason),
    }


def model_info(entry: ModelEntry, inst: Instance) -> dict[str, Any]:
    return {
        "arch": entry.info.architecture if entry.info else None,
        "quant": entry.quant,
        "format": "gguf",
        "context_length": inst.context_length,
    }


async def runtime(c: ApiContext, inst: Instance) -> dict[str, Any]:
    """``runtime``: llama-server and its build (asked once per process, from ``/props``)."""
    key = (inst.port, inst.pid)
    if key not in _BUILDS and c.links is not None:
        try:
            st = c.lifecycle.manager.status(inst.port)
            async with c.links.session(inst.port).get(
                server_url(inst.port, "/props", st), headers=auth_headers(st)
            ) as r:
                _BUILDS[key] = str((await r.json(content_type=None)).get("build_info") or "")
        except (aiohttp.ClientError, ValueError) as e:
            log.debug("No build info from port %d: %s", inst.port, e)
    return {
        "name": RUNTIME_NAME,
        "version": _BUILDS.get(key) or None,
        "supported_formats": ["gguf"],
    }


def _finish(data: dict[str, Any]) -> str | None:
    choices = data.get("choices") or [{}]
    return choices[0].get("finish_reason") if isinstance(choices[0], dict) else None


async def upstream_post(c: ApiContext, port: int, path: str, body: dict[str, Any]):
    """POST a JSON ``body`` to llama-server on ``port``."""
    return await post_upstream(c, port, path, json=body)


async def handle(request: web.Request) -> web.StreamResponse:
    from app.core.api.proxy import pick_model

    c: ApiContext = request.app[CONTEXT]
    payload = parse_json_object(await request.read())
    await check_images(payload, allow_urls=c.settings().API_ALLOW_IMAGE_URLS)
    ttl = parse_ttl(payload)
    entry = pick_model(c, payload.get("model"), request.path)
    check_kind(entry, request.path)
    path = "/v1" + request.path.removeprefix("/api/v0")
    body = {k: v for k, v in payload.items() if k != "ttl"}
    try:
        async with c.lifecycle.holding(entry, jit=c.settings().JIT_LOAD) as inst:
            if ttl is not None:
                c.lifecycle.set_ttl(inst.port, ttl)
            if body.get("stream") is True:
                return await _stream(c, request, entry, inst, path, body)
            return await _whole(c, entry, inst, path, body)
    except ModelNotLoadedError as e:
        raise ApiError(400, str(e), code="model_not_loaded") from None
    except LoadFailedError as e:
        raise ApiError(503, str(e), type_="server_error", code="model_load_failed") from None


async def _whole(
    c: ApiContext, entry: ModelEntry, inst: Instance, path: str, body: dict[str, Any]
) -> web.Response:
    meter = Meter(c.stats, entry.key)  # the live speed, as for the OpenAI routes
    up = await upstream_post(c, inst.port, path, body)
    async with up:
        raw = await up.read()
        status = up.status
    if status == 200:
        meter.body(raw)
    data = upstream_object(status, raw)
    if isinstance(data, web.Response):
        return data
    data["model"] = entry.key
    if path != "/v1/embeddings":
        data["stats"] = stats(data.pop("timings", None), _finish(data))
        data["model_info"] = model_info(entry, inst)
        data["runtime"] = await runtime(c, inst)
    return web.json_response(data)


async def _stream(
    c: ApiContext,
    request: web.Request,
    entry: ModelEntry,
    inst: Instance,
    path: str,
    body: dict[str, Any],
) -> web.StreamResponse:
    meter = Meter(c.stats, entry.key)
    up = await upstream_post(c, inst.port, path, body)
    try:
        if up.status != 200:
            return upstream_error(up.status, await up.read())
        extra = {"model_info": model_info(entry, inst), "runtime": await runtime(c, inst)}
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        finish = None
        async for line in up.content:
            meter.chunk(line)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith("data: ") and text != "data: [DONE]":
                try:
                    chunk = json.loads(text[6:])
                except ValueError:
                    chunk = None
                if isinstance(chunk, dict):
                    chunk["model"] = entry.key
                    finish = _finish(chunk) or finish
                    if "timings" in chunk:
                        chunk["stats"] = stats(chunk.pop("timings"), finish)
                        chunk.update(extra)
                    text = "data: " + json.dumps(chunk, ensure_ascii=False)
            await resp.write((text + "\n").encode())
        await resp.write_eof()
        meter.done()
        return resp
    finally:
        up.close()  # llama-server closes after a stream; when the client left, it stops


def add_routes(app: web.Application) -> None:
    for path in ("/api/v0/chat/completions", "/api/v0/completions", "/api/v0/embeddings"):
        app.router.add_post(path, handle)
