"""What the API's route modules share: the context object and JSON errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from app.config import Settings
from app.core.models.catalogue import Catalogue
from app.core.models.lifecycle import ModelLifecycle


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


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    if not raw.strip():
        raise ApiError(400, "The request body is empty; send a JSON object.", code="bad_json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The request body is not valid JSON: {e}", code="bad_json") from None
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
    settings: Callable[[], Settings]  # the settings in force (applied live)
    upstream: aiohttp.ClientSession | None = None
    upstream_headers: dict[str, str] = field(default_factory=dict)

    @property
    def catalogue(self) -> Catalogue:
        return self.lifecycle.catalogue

    def log_path(self, port: int) -> Path:
        return self.lifecycle.manager.log_path(port)


CONTEXT = web.AppKey("familylog_api", ApiContext)
