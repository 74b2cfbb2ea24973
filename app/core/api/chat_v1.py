"""``POST /api/v1/chat`` as LM Studio documents it, built on llama-server's chat completions.

Inputs: ``model``, ``input`` (a string, or message/text/image items), ``system_prompt``,
``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repeat_penalty``,
``max_output_tokens``, ``context_length``, ``stream``, ``store``, ``previous_response_id``.
Answer: ``model_instance_id``, ``output`` (one message), ``stats`` and ``response_id``. A
stream sends LM Studio's events (``chat.start`` … ``message.delta`` … ``chat.end``).
Chats are kept in memory within ``API_CHAT_STORE_MB`` (images included; least recently used
go first) until the app quits.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web

from app.core.api.common import (
    CONTEXT,
    ApiContext,
    ApiError,
    parse_json_object,
    shown,
    upstream_error,
    upstream_object,
)
from app.core.api.images import check_images
from app.core.api.kinds import check_kind
from app.core.api.load_config import parse_ttl
from app.core.api.rest_v0 import upstream_post
from app.core.api.speed import Meter
from app.core.lifecycle.instance import LoadFailedError, ModelNotLoadedError
from app.core.models.launch_args import LoadConfig

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MESSAGE_OVERHEAD = 256  # bytes a kept message costs beyond its JSON (dicts, list slots)
_PASSED = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
    "max_output_tokens": "max_tokens",
}


def message_bytes(message: dict[str, Any]) -> int:
    """What keeping one message costs: its JSON (an image's base64 included) and overhead."""
    return len(json.dumps(message)) + MESSAGE_OVERHEAD


class ChatStore:
    """Conversations by response id within a byte budget (read live, so a new setting counts
    at the next turn); the least recently used are dropped first.

    A turn keeps the very message objects of the chat it continues, so a message (and its
    image) is counted once however many stored chats hold it, as it is held once in memory.
    """

    def __init__(self, budget: Callable[[], int]) -> None:
        self._budget = budget
        self._chats: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._held: dict[int, list[int]] = {}  # id(message) -> [bytes, chats holding it]
        self.bytes = 0

    @property
    def budget(self) -> int:
        return self._budget()

    def get(self, response_id: str) -> list[dict[str, Any]] | None:
        msgs = self._chats.get(response_id)
        if msgs is not None:
            self._chats.move_to_end(response_id)
        return msgs

    def put(self, messages: list[dict[str, Any]], response_id: str | None = None) -> str | None:
        """Keep a conversation under ``response_id`` (a new one when None) and return the id;
        None when it alone is larger than the budget (it is not kept)."""
        sizes = {
            id(m): self._held[id(m)][0] if id(m) in self._held else message_bytes(m)
            for m in messages
        }
        budget = self.budget
        if sum(sizes.values()) > budget:
            log.info(
                "A chat of %.1f MiB is not kept: API_CHAT_STORE_MB is %.1f MiB",
                sum(sizes.values()) / MIB,
                budget / MIB,
            )
            return None
        rid = response_id or "resp_" + uuid.uuid4().hex
        if rid in self._chats:
            self._drop(rid)
        self._chats[rid] = messages
        for key, size in sizes.items():
            held = self._held.setdefault(key, [size, 0])
            if held[1] == 0:
                self.bytes += size
            held[1] += 1
        while self.bytes > budget:
            self._drop(next(iter(self._chats)))
        return rid

    def _drop(self, rid: str) -> None:
        for m in {id(m) for m in self._chats.pop(rid)}:
            held = self._held[m]
            held[1] -= 1
            if held[1] == 0:
                self.bytes -= held[0]
                del self._held[m]

    def __len__(self) -> int:
        return len(self._chats)


STORE = web.AppKey("familylog_chats", ChatStore)


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, code="invalid_request", param=param)


def _user_message(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"role": "user", "content": value}
    if not isinstance(value, list) or not value:
        raise _bad('"input" must be a string or a non-empty array of input items', "input")
    parts: list[dict[str, Any]] = []
    for item in value:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind in ("message", "text") and isinstance(item.get("content"), str):
            parts.append({"type": "text", "text": item["content"]})
        elif kind == "image" and isinstance(item.get("data_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": item["data_url"]}})
        else:
            raise _bad(
                'each "input" item must be {"type": "message", "content": "..."} or '
                '{"type": "image", "data_url": "data:..."}',
                "input",
            )
    if all(p["type"] == "text" for p in parts):
        return {"role": "user", "content": "\n".join(p["text"] for p in parts)}
    return {"role": "user", "content": parts}


def _request(body: dict[str, Any], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system = body.get("system_prompt")
    if system is not None and not isinstance(system, str):
        raise _bad('"system_prompt" must be a string', "system_prompt")
    messages = [m for m in history if system is None or m["role"] != "system"]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    messages.append(_user_message(body.get("input")))
    return messages


def _stats(usage: dict, timings: dict, load_time: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": usage.get("prompt_tokens", timings.get("prompt_n")),
        "total_output_tokens": usage.get("completion_tokens", timings.get("predicted_n")),
        "reasoning_output_tokens": 0,
        "tokens_per_second": timings.get("predicted_per_second"),
        "time_to_first_token_seconds": (
            round(timings["prompt_ms"] / 1000, 4) if "prompt_ms" in timings else None
        ),
    }
    if load_time is not None:
        out["model_load_time_seconds"] = round(load_time, 3)
    return out


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n".encode()


async def chat(request: web.Request) -> web.StreamResponse:
    from app.core.api.proxy import pick_model

    c: ApiContext = request.app[CONTEXT]
    store = request.app[STORE]
    body = parse_json_object(await request.read())
    await check_images(body, allow_urls=c.settings().API_ALLOW_IMAGE_URLS)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _bad('"model" is required', "model")
    ttl = parse_ttl(body)
    history: list[dict[str, Any]] = []
    prev = body.get("previous_response_id")
    if prev is not None:
        found = store.get(prev) if isinstance(prev, str) else None
        if found is None:
            raise ApiError(
                404,
                f"No stored response {shown(prev)}: it never was, or it was dropped (chats are "
                f"kept in memory until the app quits, up to API_CHAT_STORE_MB="
                f"{store.budget / MIB:g} MiB; the least recently used go first)",
                code="response_not_found",
                param="previous_response_id",
            )
        history = found
    messages = _request(body, history)
    upstream: dict[str, Any] = {"messages": messages}
    for ours, theirs in _PASSED.items():
        if body.get(ours) is not None:
            upstream[theirs] = body[ours]
    ctx = body.get("context_length")
    if ctx is not None and (isinstance(ctx, bool) or not isinstance(ctx, int) or ctx < 0):
        raise _bad('"context_length" must be a whole number >= 0', "context_length")
    entry = pick_model(c, body["model"], request.path)
    check_kind(entry, request.path)
    stream = body.get("stream") is True
    keep = body.get("store", True) is not False
    try:
        start = time.monotonic()
        loaded_before = c.lifecycle.ready(entry)
        if ctx is not None:
            await c.lifecycle.ensure(entry, LoadConfig(context_length=ctx))
        async with c.lifecycle.holding(entry, jit=c.settings().JIT_LOAD) as inst:
            load_time = (
                None
                if loaded_before is not None and loaded_before.pid == inst.pid
                else time.monotonic() - start
            )
            if ttl is not None:
                c.lifecycle.set_ttl(inst.port, ttl)
            if stream:
                return await _stream(
                    c, request, entry.key, inst.port, upstream, messages, keep, load_time
                )
            meter = Meter(c.stats, entry.key)  # the live speed, as for the OpenAI routes
            up = await upstream_post(c, inst.port, "/v1/chat/completions", upstream)
            async with up:
                status, raw = up.status, await up.read()
            if status == 200:
                meter.body(raw)
    except ModelNotLoadedError as e:
        raise ApiError(400, str(e), code="model_not_loaded") from None
    except LoadFailedError as e:
        raise ApiError(503, str(e), type_="server_error", code="model_load_failed") from None
    data = upstream_object(status, raw)
    if isinstance(data, web.Response):
        return data
    text = (data.get("choices") or [{}])[0].get("message", {}).get("content") or ""
    out = {
        "model_instance_id": entry.key,
        "output": [{"type": "message", "content": text}],
        "stats": _stats(data.get("usage") or {}, data.get("timings") or {}, load_time),
    }
    if keep and (rid := store.put([*messages, {"role": "assistant", "content": text}])):
        out["response_id"] = rid
    return web.json_response(out)


async def _stream(
    c: ApiContext,
    request: web.Request,
    key: str,
    port: int,
    upstream: dict[str, Any],
    messages: list[dict[str, Any]],
    keep: bool,
    load_time: float | None,
) -> web.StreamResponse:
    body = {**upstream, "stream": True, "stream_options": {"include_usage": True}}
    meter = Meter(c.stats, key)
    up = await upstream_post(c, port, "/v1/chat/completions", body)
    try:
        if up.status != 200:
            return upstream_error(up.status, await up.read())
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        await resp.write(_sse("chat.start", {"model_instance_id": key}))
        if load_time is not None:
            await resp.write(_sse("model_load.start", {"model_instance_id": key}))
            await resp.write(
                _sse(
                    "model_load.end",
                    {"model_instance_id": key, "load_time_seconds": round(load_time, 3)},
                )
            )
        await resp.write(_sse("prompt_processing.start", {}))
        text: list[str] = []
        usage: dict = {}
        timings: dict = {}
        started = False
        async for line in up.content:
            meter.chunk(line)
            s = line.decode("utf-8", "replace").strip()
            if not s.startswith("data: ") or s == "data: [DONE]":
                continue
            try:
                chunk = json.loads(s[6:])
            except ValueError:
                continue
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if not started:
                        started = True
                        await resp.write(_sse("prompt_processing.end", {}))
                        await resp.write(_sse("message.start", {}))
                    text.append(piece)
                    await resp.write(_sse("message.delta", {"content": piece}))
        if not started:
            await resp.write(_sse("prompt_processing.end", {}))
            await resp.write(_sse("message.start", {}))
        await resp.write(_sse("message.end", {}))
        whole = "".join(text)
        result: dict[str, Any] = {
            "model_instance_id": key,
            "output": [{"type": "message", "content": whole}],
            "stats": _stats(usage, timings, load_time),
        }
        if keep and (
            rid := request.app[STORE].put([*messages, {"role": "assistant", "content": whole}])
        ):
            result["response_id"] = rid
        await resp.write(_sse("chat.end", {"result": result}))
        await resp.write_eof()
        meter.done()
        return resp
    finally:
        up.close()


def add_routes(app: web.Application) -> None:
    app[STORE] = ChatStore(lambda: int(app[CONTEXT].settings().API_CHAT_STORE_MB * MIB))
    app.router.add_post("/api/v1/chat", chat)
