"""What the API's route modules share: the context object and JSON errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from app.config import SettingsSource
from app.core.downloads.service import Downloads
from app.core.gpu.snapshot import GpuProbe
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.models.catalogue import Catalogue
from app.core.models.stats import SpeedStats


class ApiError(Exception):
    """An answer with an error status and a JSON body ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.headers = headers
        self.extra = extra

    def response(self) -> web.Response:
        return error_response(
            self.status,
            self.message,
            type_=self.type,
            code=self.code,
            headers=self.headers,
            **self.extra,
        )


def error_response(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "code": code, **extra}}
    return web.json_response(body, status=status, headers=headers)


MAX_JSON_DEPTH = 200
_TOO_DEEP = object()


def _json_problem(data: Any, limit: int) -> str | None:
    """What makes a parsed body unfit to pass on, walked without recursion (so a hostile
    body cannot exhaust the stack later on): nesting deeper than ``limit``, or a string
    with an unpaired surrogate escape (``"\\ud800"``: Python accepts it, llama-server
    answers 500)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "contains an unpaired surrogate escape (\\ud800-\\udfff)"
            continue
        if isinstance(value, dict):
            stack.extend((k, depth) for k in value)
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return f"nests deeper than {limit} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def upstream_object(status: int, raw: bytes) -> dict[str, Any] | web.Response:
    """llama-server's answer as a JSON object to build on; anything else (an error, not an
    object) is passed through as it came."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status != 200 or not isinstance(data, dict):
        return web.Response(status=status, body=raw, content_type="application/json")
    return data


def _no_constant(name: str) -> Any:
    """NaN and Infinity, which Python reads but JSON has not (llama-server refuses them)."""
    raise ValueError(f"{name} is not a JSON value; send a number or null")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    if not raw.strip():
        raise ApiError(400, "The request body is empty; send a JSON object.", code="bad_json")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The request body is not valid JSON: {e}", code="bad_json") from None
    except RecursionError:
        data = _TOO_DEEP  # nested deeper than Python parses
    if data is _TOO_DEEP:
        problem: str | None = f"nests deeper than {MAX_JSON_DEPTH} levels"
    else:
        problem = _json_problem(data, MAX_JSON_DEPTH)
    if problem:
        raise ApiError(400, f"The request body {problem}.", code="bad_json")
    if not isinstance(data, dict):
        raise ApiError(
            400,
            f"The request body must be a JSON object, not {type(data).__name__}.",
            code="bad_json",
        )
    return data


@dataclass
class ApiContext:
    lifecycle: ModelLifecycle
    settings: SettingsSource  # the settings in force (applied live)
    upstream: aiohttp.ClientSession | None = None
    stats: SpeedStats = field(default_factory=SpeedStats)  # per-model speed, fed by the proxy
    gpu_probe: GpuProbe | None = None  # GPU memory per process (blocking: run off the loop)
    downloads: Downloads | None = None  # models from the Hugging Face Hub

    @property
    def catalogue(self) -> Catalogue:
        return self.lifecycle.catalogue

    def log_path(self, port: int) -> Path:
        return self.lifecycle.manager.log_path(port)


CONTEXT = web.AppKey("familylog_api", ApiContext)
