"""The API's guards against web pages and abuse, as aiohttp middlewares. Everything that can
be decided from a request's headers is decided before a byte of its body is read, so a
refused request changes nothing and costs next to nothing.

In order (``Guard.middlewares``):

1. **Admit** (the headers only):
   - **Host** (DNS rebinding): while ``API_ALLOW_REMOTE`` is false only a loopback ``Host``
     is answered (``localhost``, ``127.0.0.0/8``, ``[::1]``, any port); with remote
     access, the names in ``API_ALLOWED_HOSTS`` as well (empty: any name, with a warning).
   - **Origin** (requests from web pages): a request with an ``Origin`` header is refused
     unless that origin is in ``API_CORS_ORIGINS`` (``*`` only when written out; ``null``,
     which any page can send from a sandboxed frame, only when written exactly and never
     through ``*``), and so is a cross-site request without one (``Sec-Fetch-Site``).
     Allowed origins get their preflight ``OPTIONS`` answered and
     ``Access-Control-Allow-Origin`` on every response (``on_response_prepare``, so
     streamed answers and errors carry it too).
   - **Key** (``API_KEY``): ``Authorization: Bearer <key>`` (OpenAI's clients) or
     ``x-api-key: <key>`` (Anthropic's), compared in constant time; anything else,
     undecodable bytes included, gets 401. LM Studio's SDK probe and websockets
     (``open_paths``) pass without it: they authenticate in their first packet.
2. **Receive** (``bodies.BodyReader``): the body, within its size, time and encoding
   limits, with a few places per client address for bodies still arriving.
3. **Answer cap** (``API_MAX_CONNECTIONS``): requests being answered at once, counted once
   their body is in, so connections still sending theirs never take these places; idle
   keep-alive connections do not count. LM Studio SDK websockets (which last as long as
   their client) are capped apart, at the same number.

Every refusal is answered with a JSON error and logged once per client and reason per
minute (``refusals.RefusalLog``). The connection layer below (``connections.py``) bounds
heads, idle and open connections.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from dataclasses import replace

from aiohttp import hdrs, web

from app.config import Settings
from app.core.api.bodies import BodyLimits, BodyReader, Refusal
from app.core.api.common import JSON_LIMITS, JsonLimits, error_response
from app.core.api.connections import close_after_answer
from app.core.api.refusals import RefusalLog

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ALLOW_METHODS = "GET, POST, OPTIONS"
DEFAULT_ALLOW_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = "600"
_TOKEN_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_PORT = re.compile(r"^(:[0-9]{0,5})?$")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$")
NULL_ORIGIN = "null"


def host_name(value: str) -> str | None:
    """The name part of a ``Host`` header, lower-case (IPv6 in brackets); None if malformed."""
    v = value.strip().lower()
    if v.startswith("["):
        end = v.find("]")
        if end < 0:
            return None
        name, rest = v[: end + 1], v[end + 1 :]
    else:
        name, sep, port = v.partition(":")
        rest = sep + port
    if not name or not _PORT.match(rest):
        return None
    return name


def is_loopback_name(name: str) -> bool:
    """``localhost``, an IPv4 address in 127.0.0.0/8 (dotted quad) or ``[::1]``."""
    if name in ("localhost", "localhost."):
        return True
    try:
        if name.startswith("[") and name.endswith("]"):
            return ipaddress.IPv6Address(name[1:-1]) == ipaddress.IPv6Address("::1")
        return ipaddress.IPv4Address(name).is_loopback
    except ValueError:
        return False


def normal_origin(origin: str) -> str:
    """An origin as browsers send it: lower-case, no trailing slash, no default port."""
    o = origin.strip().lower().rstrip("/")
    scheme = o.partition("://")[0]
    default = _DEFAULT_PORTS.get(scheme)
    if default and o.endswith(default):
        o = o[: -len(default)]
    return o


class Guard:
    """The checks of one API server, built from its settings."""

    def __init__(
        self,
        settings: Settings,
        refusals: RefusalLog | None = None,
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        s = settings
        self.refusals = refusals or RefusalLog()
        self.open_paths = open_paths  # reached without the key (they check it themselves)
        self.allow_remote = s.API_ALLOW_REMOTE
        hosts = [host_name(h) or h.lower() for h in s.allowed_hosts]
        self.any_host = s.API_ALLOW_REMOTE and (not hosts or "*" in hosts)
        self.hosts = frozenset(hosts)
        origins = [normal_origin(o) for o in s.cors_origins]
        self.any_origin = "*" in origins
        self.origins = frozenset(o for o in origins if o != NULL_ORIGIN)
        self.null_origin = NULL_ORIGIN in s.cors_origins  # written exactly, never through *
        key = s.API_KEY.get_secret_value()
        self.expected = f"Bearer {key}".encode() if key else None
        self.expected_x = key.encode() if key else None  # x-api-key (Anthropic's clients)
        self.max_body = max(1, int(s.API_MAX_BODY_MB * MIB))
        self.bodies = BodyReader(
            BodyLimits(
                max_bytes=self.max_body,
                max_mb=s.API_MAX_BODY_MB,
                timeout=s.API_BODY_TIMEOUT_SECONDS,
                stall=s.API_BODY_STALL_SECONDS,
                per_client=s.API_MAX_PENDING_PER_CLIENT,
                pending=s.API_MAX_CONNECTIONS,
                compressed=s.API_ACCEPT_COMPRESSED,
            )
        )
        self.json_limits = JsonLimits(keys=s.API_JSON_MAX_KEYS, items=s.API_JSON_MAX_ITEMS)
        self.max_connections = s.API_MAX_CONNECTIONS
        self.active = 0
        self.sockets = 0  # open SDK websockets
        if self.null_origin:
            log.warning(
                "API_CORS_ORIGINS lists 'null': any web page can send 'Origin: null' (from a "
                "sandboxed frame), so every page on the web may now use the API."
            )
        if self.any_host:
            log.warning(
                "API_ALLOW_REMOTE=true and API_ALLOWED_HOSTS is empty: the API answers any "
                "Host name. List the names clients use (API_ALLOWED_HOSTS=myhost.lan) to "
                "refuse DNS-rebinding requests from web pages."
            )

    def middlewares(self) -> list:
        return [self.admit, self.receive, self.answer_cap]

    def install(self, app: web.Application) -> None:
        """Add the CORS headers to every response for an allowed origin."""
        app.on_response_prepare.append(self._cors_headers)

    def refuse(
        self,
        request: web.BaseRequest,
        status: int,
        message: str,
        *,
        code: str,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> web.Response:
        """The JSON error for a refused request, recorded in the log (once a minute)."""
        self.refusals.refused(request.remote, code, message, status, request)
        resp = error_response(status, message, type_=type_, code=code, headers=headers)
        if close:
            resp.force_close()
        return resp

    # ── 1. Admit: Host, Origin, key ───────────────────────────────────────────
    @web.middleware
    async def admit(self, request: web.Request, handler) -> web.StreamResponse:
        refused = self.check_host(request) or self.check_origin(request)
        if refused is not None:
            return refused
        if (
            request.method == hdrs.METH_OPTIONS
            and request.headers.get(hdrs.ORIGIN)
            and (hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers)
        ):
            return self._preflight(request, request.headers[hdrs.ORIGIN])  # carries no key
        refused = self.check_key(request)
        if refused is not None:
            return refused
        client = request.remote

        def refused(code: str, message: str) -> None:
            self.refusals.refused(client, code, message, 400, request)

        JSON_LIMITS.set(replace(self.json_limits, refused=refused))  # this request's task only
        return await handler(request)

    # ── Host ──────────────────────────────────────────────────────────────────
    def host_allowed(self, value: str | None) -> bool:
        if value is None:
            return False
        name = host_name(value)
        if name is None:
            return False
        if is_loopback_name(name):
            return True
        if not self.allow_remote:
            return False
        return self.any_host or name in self.hosts

    def check_host(self, request: web.BaseRequest) -> web.Response | None:
        value = request.headers.get(hdrs.HOST)
        if self.host_allowed(value):
            return None
        shown = "no Host header" if value is None else f"Host {value[:100]!r}"
        if self.allow_remote:
            why = (
                f"Refused: {shown} is not a name this API answers to. Add it to "
                "API_ALLOWED_HOSTS (the names clients use to reach this machine)."
            )
        else:
            why = (
                f"Refused: {shown} is not a loopback name (localhost, 127.0.0.1, [::1]). "
                "While API_ALLOW_REMOTE is false the API answers only those, so a web page "
                "cannot reach it through DNS rebinding. To serve other names set "
                "API_ALLOW_REMOTE=true and list them in API_ALLOWED_HOSTS."
            )
        return self.refuse(request, 403, why, type_="permission_error", code="host_not_allowed")

    # ── Origin and CORS ───────────────────────────────────────────────────────
    def origin_allowed(self, origin: str) -> bool:
        o = normal_origin(origin)
        if o == NULL_ORIGIN:
            return self.null_origin
        return self.any_origin or o in self.origins

    def check_origin(self, request: web.BaseRequest) -> web.Response | None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            site = request.headers.get("Sec-Fetch-Site", "").lower()
            if site in ("cross-site", "same-site") and not self.any_origin:
                why = (
                    "Refused: a request from another web site (a link or form; "
                    f"Sec-Fetch-Site: {site[:20]}). Web pages may use this API only from an "
                    "origin listed in API_CORS_ORIGINS."
                )
                return self.refuse(
                    request, 403, why, type_="permission_error", code="origin_not_allowed"
                )
            return None
        if self.origin_allowed(origin):
            return None
        o = normal_origin(origin)
        if o == NULL_ORIGIN:
            why = (
                "Refused: a request with 'Origin: null' (from a sandboxed frame, a local file "
                "or a redirect: any web page can send it, so it cannot be trusted). Use the "
                "API from a page whose origin is listed in API_CORS_ORIGINS."
            )
        elif _ORIGIN.match(o):
            why = (
                f"Refused: requests from web pages are not allowed (Origin: {o[:100]!r}). To "
                "let this page use the API, add its origin to API_CORS_ORIGINS "
                f"(e.g. API_CORS_ORIGINS={o[:100]})."
            )
        else:
            why = f"Refused: {origin[:100]!r} is not a web origin this API answers."
        return self.refuse(request, 403, why, type_="permission_error", code="origin_not_allowed")

    def _preflight(self, request: web.Request, origin: str) -> web.Response:
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "").strip()
        allow_headers = asked if asked and _TOKEN_LIST.match(asked) else DEFAULT_ALLOW_HEADERS
        headers = {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOW_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: allow_headers,
            hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE,
            hdrs.VARY: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"
        return web.Response(status=204, headers=headers)

    async def _cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not self.origin_allowed(origin):
            return
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        vary = response.headers.get(hdrs.VARY)
        if not vary:
            response.headers[hdrs.VARY] = "Origin"
        elif "origin" not in vary.lower():
            response.headers[hdrs.VARY] = f"{vary}, Origin"

    # ── API key ───────────────────────────────────────────────────────────────
    def check_key(self, request: web.BaseRequest) -> web.Response | None:
        if self.expected is None or self.expected_x is None or request.path in self.open_paths:
            return None
        given = _raw(request.headers.get(hdrs.AUTHORIZATION, ""))
        other = _raw(request.headers.get("x-api-key", ""))
        # both compared every time, in constant time
        if hmac.compare_digest(given, self.expected) | hmac.compare_digest(other, self.expected_x):
            return None
        return self.refuse(
            request,
            401,
            "Missing or wrong API key: send the header 'Authorization: Bearer <API_KEY>' "
            "(or 'x-api-key: <API_KEY>') with the key set in the app's settings (API_KEY).",
            type_="authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )

    # ── 2. Receive the body ───────────────────────────────────────────────────
    @web.middleware
    async def receive(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            await self.bodies.read(request)
        except Refusal as r:
            if r.stalled:
                close_after_answer(request)
            return self.refuse(
                request, r.status, r.message, code=r.code, headers=r.headers or None, close=True
            )
        return await handler(request)

    # ── 3. Requests answered at once ──────────────────────────────────────────
    @web.middleware
    async def answer_cap(self, request: web.Request, handler) -> web.StreamResponse:
        # An SDK websocket lasts as long as its client: counted apart, against the same cap,
        # so open SDK clients never use up the places the other clients need.
        socket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if (self.sockets if socket else self.active) >= self.max_connections:
            n = self.max_connections
            what = "LM Studio SDK connections" if socket else "requests"
            return self.refuse(
                request,
                503,
                f"The API is already answering {n} {what} at once (API_MAX_CONNECTIONS={n}); "
                "try again when one has finished, or raise API_MAX_CONNECTIONS.",
                type_="server_error",
                code="too_many_connections",
                headers={"Retry-After": "1"},
            )
        if socket:
            self.sockets += 1
        else:
            self.active += 1
        try:
            return await handler(request)
        finally:
            if socket:
                self.sockets -= 1
            else:
                self.active -= 1


def _raw(header: str) -> bytes:
    """A header's bytes: aiohttp keeps bytes that are not UTF-8 as surrogate escapes."""
    try:
        return header.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b""
