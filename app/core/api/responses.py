"""OpenAI's ``POST /v1/responses``, answered by llama-server, with the conversation kept here:
llama-server is stateless and refuses ``previous_response_id``, so the app keeps each
response's input and output items by its id (as ``/api/v1/chat`` keeps its chats, in memory
within ``API_CHAT_STORE_MB``) and sends the whole conversation on. ``store: false`` keeps
nothing. Images are checked as on every route (``images.check_images``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app.core.api import proxy
from app.core.api.chat_v1 import MIB, ChatStore
from app.core.api.common import CONTEXT, ApiContext, ApiError, parse_json_object, shown
from app.core.api.images import check_images
from app.core.api.kinds import check_kind
from app.core.api.load_config import parse_ttl

PATH = "/v1/responses"
RESPONSES = web.AppKey("familylog_responses", ChatStore)


class Answer:
    """Finds the finished response in llama-server's answer as it goes by: the body, or a
    stream's ``response.completed`` event (only the current line is kept)."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.response: dict[str, Any] | None = None
        self._partial = b""

    def __call__(self, data: bytes) -> None:
        if not self.stream:
            self._take(data)
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"data:") and b"response.completed" in line:
                event = self._parse(line[5:])
                if event is not None and event.get("type") == "response.completed":
                    self._take_object(event.get("response"))

    @staticmethod
    def _parse(data: bytes) -> dict[str, Any] | None:
        try:
            obj = json.loads(data)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None

    def _take(self, body: bytes) -> None:
        self._take_object(self._parse(body))

    def _take_object(self, obj: Any) -> None:
        ok = isinstance(obj, dict) and isinstance(obj.get("id"), str)
        if ok and isinstance(obj.get("output"), list):
            self.response = obj

    @property
    def output(self) -> list[dict[str, Any]]:
        return list(self.response["output"]) if self.response else []


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return list(value)
    raise ApiError(
        400,
        f'"input" must be a string or an array of input items, not {value!r:.100}',
        param="input",
    )


async def responses(request: web.Request) -> web.StreamResponse:
    c: ApiContext = request.app[CONTEXT]
    store = request.app[RESPONSES]
    payload = parse_json_object(await request.read())
    ttl = parse_ttl(payload)
    history: list[Any] = []
    prev = payload.pop("previous_response_id", None)
    if prev is not None:
        found = store.get(prev) if isinstance(prev, str) else None
        if found is None:
            raise ApiError(
                400,
                f"Previous response with id {shown(prev)} not found: it never was, was sent with "
                '"store": false, or was dropped (kept in memory until the app quits, the least '
                "recently used dropped past API_CHAT_STORE_MB).",
                code="previous_response_not_found",
                param="previous_response_id",
            )
        history = found
    items = _items(payload.get("input"))
    await check_images(items, allow_urls=c.settings().API_ALLOW_IMAGE_URLS)
    payload["input"] = history + items
    entry = proxy.pick_model(c, payload.get("model"), request.path)
    check_kind(entry, request.path)
    keep = payload.get("store", True) is not False
    answer = Answer(stream=payload.get("stream") is True)
    raw = json.dumps(payload, ensure_ascii=False).encode()
    resp = await proxy.relay_to(c, request, raw, entry, ttl, observe=answer if keep else None)
    if keep and answer.response is not None:
        store.put(history + items + answer.output, answer.response["id"])
    return resp


def add_routes(app: web.Application) -> None:
    app[RESPONSES] = ChatStore(lambda: int(app[CONTEXT].settings().API_CHAT_STORE_MB * MIB))
    app.router.add_post(PATH, responses)
