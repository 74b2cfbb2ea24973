"""The API's guards against web pages and abuse, as aiohttp middlewares that run before the
body is read or any handler runs, so a refused request changes nothing.

In order (``Guard.middlewares``):

1. **Connection cap** (``API_MAX_CONNECTIONS``): more requests being answered at once get
   503. aiohttp answers one request at a time per connection, so this is the number of
   connections busy with a request; idle keep-alive connections do not count. LM Studio
   SDK websockets are capped apart, at the same number.
2. **Host** (DNS rebinding): while ``API_ALLOW_REMOTE`` is false only a loopback ``Host``
   is answered (``localhost``, ``127.0.0.0/8``, ``[::1]``, any port); with remote access,
   the names in ``API_ALLOWED_HOSTS`` as well (empty: any name, with a warning).
3. **Origin** (requests from web pages): a request with an ``Origin`` header is refused
   unless that origin is in ``API_CORS_ORIGINS`` (``*`` only when written out), and so is
   a cross-site request without one (``Sec-Fetch-Site``: a link or form on another site).
   Allowed origins get their preflight ``OPTIONS`` answered and
   ``Access-Control-Allow-Origin`` on every response (``on_response_prepare``, so streamed
   answers and errors carry it too). Requests without ``Origin`` (FamilyLog, curl, SDKs)
   pass as before.
4. **Body** (``API_MAX_BODY_MB``, ``API_BODY_TIMEOUT_SECONDS``): a declared length over the
   limit is refused at once with 413; otherwise the body is read here, bounded in size and
   time (413, 408), and the handlers get it from aiohttp's cache.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re

from aiohttp import hdrs, http_exceptions, web

from app.config import Settings
from app.core.api.common import error_response

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ALLOW_METHODS = "GET, POST, OPTIONS"
DEFAULT_ALLOW_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = "600"
_TOKEN_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_PORT = re.compile(r"^(:[0-9]{0,5})?$")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


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

    def __init__(self, settings: Settings) -> None:
        s = settings
        self.allow_remote = s.API_ALLOW_REMOTE
        hosts = [host_name(h) or h.lower() for h in s.allowed_hosts]
        self.any_host = s.API_ALLOW_REMOTE and (not hosts or "*" in hosts)
        self.hosts = frozenset(hosts)
        origins = [normal_origin(o) for o in s.cors_origins]
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)
        self.max_body = max(1, int(s.API_MAX_BODY_MB * MIB))
        self.max_body_mb = s.API_MAX_BODY_MB
        self.body_timeout = s.API_BODY_TIMEOUT_SECONDS
        self.max_connections = s.API_MAX_CONNECTIONS
        self.active = 0
        self.sockets = 0  # open SDK websockets
        if self.any_host:
            log.warning(
                "API_ALLOW_REMOTE=true and API_ALLOWED_HOSTS is empty: the API answers any "
                "Host name. List the names clients use (API_ALLOWED_HOSTS=myhost.lan) to "
                "refuse DNS-rebinding requests from web pages."
            )

    def middlewares(self) -> list:
        return [self.connection_cap, self.check_host, self.check_origin, self.read_body]

    def install(self, app: web.Application) -> None:
        """Add the CORS headers to every response for an allowed origin."""
        app.on_response_prepare.append(self._cors_headers)

    # ── 1. Connections ────────────────────────────────────────────────────────
    @web.middleware
    async def connection_cap(self, request: web.Request, handler) -> web.StreamResponse:
        # An SDK websocket lasts as long as its client: counted apart, against the same cap,
        # so open SDK clients never use up the requests the other clients need.
        socket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if (self.sockets if socket else self.active) >= self.max_connections:
            n = self.max_connections
            what = "LM Studio SDK connections" if socket else "requests"
            return error_response(
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

    # ── 2. Host ───────────────────────────────────────────────────────────────
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

    @web.middleware
    async def check_host(self, request: web.Request, handler) -> web.StreamResponse:
        value = request.headers.get(hdrs.HOST)
        if self.host_allowed(value):
            return await handler(request)
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
        return error_response(403, why, type_="permission_error", code="host_not_allowed")

    # ── 3. Origin and CORS ────────────────────────────────────────────────────
    def origin_allowed(self, origin: str) -> bool:
        return self.any_origin or normal_origin(origin) in self.origins

    @web.middleware
    async def check_origin(self, request: web.Request, handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            site = request.headers.get("Sec-Fetch-Site", "").lower()
            if site in ("cross-site", "same-site") and not self.any_origin:
                return error_response(
                    403,
                    "Refused: a request from another web site (a link or form; "
                    f"Sec-Fetch-Site: {site}). Web pages may use this API only from an "
                    "origin listed in API_CORS_ORIGINS.",
                    type_="permission_error",
                    code="origin_not_allowed",
                )
            return await handler(request)
        if not self.origin_allowed(origin):
            shown = origin[:200]
            return error_response(
                403,
                f"Refused: requests from web pages are not allowed (Origin: {shown!r}). To "
                "let this page use the API, add its origin to API_CORS_ORIGINS "
                f"(e.g. API_CORS_ORIGINS={shown}).",
                type_="permission_error",
                code="origin_not_allowed",
            )
        if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in (
            request.headers
        ):
            return self._preflight(request, origin)
        return await handler(request)

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

    # ── 4. Body ───────────────────────────────────────────────────────────────
    def _too_large(self) -> web.Response:
        return error_response(
            413,
            f"The request body is larger than API_MAX_BODY_MB={self.max_body_mb:g} MiB. Send "
            "smaller images or raise API_MAX_BODY_MB.",
            code="body_too_large",
        )

    @web.middleware
    async def read_body(self, request: web.Request, handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > self.max_body:
            return self._too_large()
        if request.body_exists:
            try:
                async with asyncio.timeout(self.body_timeout):
                    await request.read()  # cached: the handler's read() gets these bytes
            except TimeoutError:
                resp = error_response(
                    408,
                    f"The request body did not arrive within API_BODY_TIMEOUT_SECONDS="
                    f"{self.body_timeout:g} s.",
                    code="body_timeout",
                )
                resp.force_close()
                return resp
            except web.HTTPRequestEntityTooLarge:
                resp = self._too_large()
                resp.force_close()
                return resp
            except http_exceptions.HttpProcessingError as e:
                resp = error_response(
                    400,
                    f"The request body is malformed or incomplete: {e.message or e}",
                    code="bad_body",
                )
                resp.force_close()
                return resp
        return await handler(request)
