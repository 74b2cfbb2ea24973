"""What the API's route modules share: the context object and JSON errors."""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from app.config import SettingsSource
from app.core.api.inflight import InFlight
from app.core.api.server_links import ServerLinks
from app.core.downloads.service import Downloads
from app.core.gpu.snapshot import GpuProbe
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.machines.peers import Peers
from app.core.machines.workers import Workers
from app.core.models.catalogue import Catalogue, UnknownModelError
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


def model_not_found(e: UnknownModelError, **extra: Any) -> ApiError:
    """The 404 of a model the catalogue does not know, listing the keys it does."""
    return ApiError(404, str(e), code="model_not_found", **extra, known_models=e.known)


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
MAX_SHOWN = 80  # characters of a client's value echoed in an error message
_TOO_DEEP = object()
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = MAX_SHOWN
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4
_SHOWN.maxlevel = 2


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters (an echoed value in an error stays short)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def shown(value: object) -> str:
    """A client's value as an error message quotes it: its repr, short whatever its size
    (``reprlib``: a huge list or string costs no more than a short one)."""
    return _SHOWN.repr(value)


@dataclass(frozen=True)
class JsonLimits:
    """How wide a request body's JSON may be (``API_JSON_MAX_KEYS``/``_ITEMS``), and where
    a body refused for its JSON is recorded (the guard's refusal log, for its client)."""

    keys: int = 1000
    items: int = 1_000_000
    refused: Callable[[str, str], None] | None = None  # (code, message)


JSON_LIMITS: ContextVar[JsonLimits | None] = ContextVar("json_limits", default=None)
"""The limits of the request being answered: the guard sets them from the settings for each
request (aiohttp runs every request in a task of its own), so the route modules' calls of
``parse_json_object`` need not pass them."""


class _TooWide(ValueError):
    def __init__(self, members: int) -> None:
        super().__init__(members)
        self.members = members


def _json_path(path: tuple) -> str:
    """``("messages", 0, "content")`` as ``messages[0].content``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + clip(part, 40)
    return out or "(the body)"


def _path_to(data: Any, target: object) -> str:
    """Where ``target`` (an object inside ``data``) sits, as ``messages[0].content``; walked
    with a stack of iterators, only when a problem was found."""
    stack: list[tuple[Any, Any]] = [(None, iter([(None, data)]))]
    path: list = []
    while stack:
        step = next(stack[-1][1], None)
        if step is None:
            stack.pop()
            if path:
                path.pop()
            continue
        key, value = step
        if value is target:
            return _json_path((*path[1:], key)) if path else _json_path(())
        if isinstance(value, dict | list):
            path.append(key)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.append((value, iter(items)))
    return _json_path(())


def _json_problem(data: Any, limits: JsonLimits, depth_limit: int = MAX_JSON_DEPTH) -> str | None:
    """What makes a parsed body unfit to pass on, walked without recursion (so a hostile
    body cannot exhaust the stack later on): nesting deeper than ``depth_limit``, an array
    wider than ``limits.items``, a number llama-server cannot read (NaN, Infinity, beyond a
    double's range: it answers 500), or a string with an unpaired surrogate escape
    (``"\\ud800"``: Python accepts it, llama-server answers 500)."""
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
        if isinstance(value, float):
            if isinstance(value, _Constant):
                where = _path_to(data, value)
                return (
                    f"has {value.name} at {where}: {value.name} is not a JSON value; send a number"
                )
            if not math.isfinite(value):
                where = _path_to(data, value)
                return f"has a number beyond ±1.8e308 at {where}; send a finite number"
            continue
        if isinstance(value, int):
            if not -_DOUBLE_MAX < value < _DOUBLE_MAX:
                where = _path_to(data, value)
                return f"has a number beyond ±1.8e308 at {where}; send a finite number"
            continue
        if isinstance(value, dict):
            stack.extend((k, depth) for k in value)
            children = value.values()
        elif isinstance(value, list):
            if len(value) > limits.items:
                return (
                    f"has an array of {len(value):,} items at {_path_to(data, value)}; at "
                    f"most {limits.items:,} are accepted (API_JSON_MAX_ITEMS)"
                )
            children = value
        else:
            continue
        if depth > depth_limit:
            return f"nests deeper than {depth_limit} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


class _Constant(float):
    """NaN, Infinity or -Infinity as written: Python's json reads them, JSON and
    llama-server do not; kept as read so the error can name them and where they are."""

    name: str

    def __new__(cls, name: str) -> _Constant:
        value = super().__new__(cls, name)
        value.name = name
        return value


_DOUBLE_MAX = 2**1024  # the first integer a double cannot hold (llama-server: "number overflow")


def upstream_message(body: bytes) -> str:
    """The message of llama-server's error answer (``{"error": {"message": …}}``)."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode("utf-8", "replace")
    return str(message)[:500]


def upstream_error(status: int, raw: bytes, port: int | None = None) -> web.Response:
    """llama-server's error answer, passed on as it came, but for its 500 (its answer to
    input it cannot handle, e.g. an image for a model without a projector): that is a 502
    with its message, so a 500 from this API is always the app's own fault."""
    if status == 500:
        where = f"llama-server on port {port}" if port is not None else "llama-server"
        raise ApiError(
            502,
            f"{where} could not answer: {upstream_message(raw)}",
            type_="server_error",
            code="upstream_error",
        )
    return web.Response(status=status, body=raw, content_type="application/json")


def upstream_object(status: int, raw: bytes) -> dict[str, Any] | web.Response:
    """llama-server's answer as a JSON object to build on; anything else (an error, not an
    object) is passed on by ``upstream_error``."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status != 200 or not isinstance(data, dict):
        return upstream_error(status, raw)
    return data


def parse_json_object(raw: bytes, limits: JsonLimits | None = None) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong. ``limits``:
    the width limits (default: those of the request being answered)."""
    limits = limits or JSON_LIMITS.get() or JsonLimits()

    def refuse(message: str, code: str = "bad_json") -> ApiError:
        if limits.refused is not None:
            limits.refused(code, message)
        return ApiError(400, message, code=code)

    if not raw.strip():
        raise refuse("The request body is empty; send a JSON object.")

    def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # counted as sent (duplicates too), before llama-server reads them in quadratic time
        if len(pairs) > limits.keys:
            raise _TooWide(len(pairs))
        return dict(pairs)

    try:
        data = json.loads(raw, object_pairs_hook=members, parse_constant=_Constant)
    except _TooWide as e:
        raise refuse(
            f"The request body has an object with {e.members:,} members; at most "
            f"{limits.keys:,} are accepted (API_JSON_MAX_KEYS).",
            "json_too_wide",
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise refuse(f"The request body is not valid JSON: {clip(str(e), 200)}") from None
    except RecursionError:
        data = _TOO_DEEP  # nested deeper than Python parses
    if data is _TOO_DEEP:
        problem: str | None = f"nests deeper than {MAX_JSON_DEPTH} levels"
    else:
        problem = _json_problem(data, limits)
    if problem:
        raise refuse(f"The request body {problem}.")
    if not isinstance(data, dict):
        raise refuse(f"The request body must be a JSON object, not {type(data).__name__}.")
    return data


@dataclass
class ApiContext:
    lifecycle: ModelLifecycle
    settings: SettingsSource  # the settings in force (applied live)
    upstream: aiohttp.ClientSession | None = None  # to other machines (peers)
    links: ServerLinks | None = None  # to this app's llama-servers, one pool per port
    stats: SpeedStats = field(default_factory=SpeedStats)  # per-model speed, fed by the proxy
    gpu_probe: GpuProbe | None = None  # GPU memory per process (blocking: run off the loop)
    downloads: Downloads | None = None  # models from the Hugging Face Hub
    workers: Workers | None = None  # the RPC workers models run across (a lost one named)
    peers: Peers | None = None  # other servers whose models are listed and forwarded to
    runs: Callable[[], Any] | None = None  # the app's RunService, when it has one
    rescan: Callable[[], Awaitable[Any]] | None = None  # the app's Rescanner.rescan
    inflight: InFlight = field(default_factory=lambda: InFlight(hung_error))  # per server

    @property
    def catalogue(self) -> Catalogue:
        return self.lifecycle.catalogue

    def log_path(self, port: int) -> Path:
        return self.lifecycle.manager.log_path(port)


def hung_error(reason: str) -> ApiError:
    """The answer to a request whose server was declared hung meanwhile."""
    return ApiError(503, reason, type_="server_error", code="model_not_responding")


CONTEXT = web.AppKey("familylog_api", ApiContext)
