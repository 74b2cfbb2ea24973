"""The other clients LM Studio serves, forwarded by model to llama-server (which answers
them itself): Anthropic's ``/v1/messages`` (and ``count_tokens``), OpenAI's
``/v1/responses`` (its conversations kept here: ``responses.py``), and llama-server's own
``/tokenize``, ``/detokenize``, ``/apply-template``, ``/infill`` and ``/v1/rerank``, named by
a ``model`` field or query parameter. Each answers errors in its client's shape; a request a
model's type cannot serve (a chat to an embedding model) is refused with a 400 that says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from app.core.api.common import ApiError

ANTHROPIC = ("/v1/messages", "/v1/messages/count_tokens")
OPENAI = ("/v1/responses",)
LLAMA = ("/tokenize", "/detokenize", "/apply-template", "/infill", "/v1/rerank", "/rerank")


def _anthropic_type(e: ApiError) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        409: "invalid_request_error",
        503: "overloaded_error",
    }.get(e.status, "api_error")


def anthropic_errors(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Errors as Anthropic's API answers them: ``{"type":"error","error":{...}}``."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            body = {"type": "error", "error": {"type": _anthropic_type(e), "message": e.message}}
            return web.json_response(body, status=e.status, headers=e.headers)

    return wrapped


def model_name(request: web.Request, payload: dict[str, Any]) -> object:
    """The ``model`` field of the body, else the ``model`` query parameter."""
    name = payload.get("model")
    return name if name is not None else request.query.get("model")


async def forward_by_model(request: web.Request) -> web.StreamResponse:
    """Forward the request unchanged to the llama-server of its model (JIT-loaded), named
    in its body or its query."""
    from app.core.api import proxy  # the relay and the model choice live there

    return await proxy.forward(request, model=model_name)


def add_routes(app: web.Application) -> None:
    for path in ANTHROPIC:
        app.router.add_post(path, anthropic_errors(forward_by_model))
    for path in LLAMA:
        app.router.add_post(path, forward_by_model)
