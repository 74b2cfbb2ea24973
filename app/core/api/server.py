"""``ApiServer``: LM Studio's API and the OpenAI proxy on ``API_HOST:API_PORT``, as a core service.

It runs on the core's event loop (plain asyncio or qasync). It binds only to a loopback
address unless ``API_ALLOW_REMOTE=true``, and asks for ``Authorization: Bearer <API_KEY>``
when an ``API_KEY`` is set. A failure to start (port taken, address refused) is reported as
a notice and leaves the rest of the app running.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from app.config import Settings, SettingsSource
from app.core.api import (
    chat_v1,
    clients,
    control,
    downloads,
    lmstudio,
    lmstudio_ws,
    peers,
    proxy,
    ps,
    responses,
    rest_v0,
    stats,
)
from app.core.api.common import CONTEXT, ApiContext, ApiError, clip, error_response, hung_error
from app.core.api.connections import (
    ConnectionTable,
    GuardedSite,
    connection_table,
    handler_args,
    watch_accept_errors,
)
from app.core.api.guard import Guard
from app.core.api.inflight import InFlight
from app.core.api.refusals import REFUSALS, RefusalLog, log_refusals
from app.core.api.server_links import ServerLinks, upstream_session
from app.core.api.upstream import UPSTREAM_PORT, timed_out
from app.core.downloads.service import Downloads
from app.core.gpu.snapshot import GpuProbe
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.machines.peers import Peers
from app.core.machines.workers import Workers
from app.core.models.stats import SpeedStats
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.address import is_loopback
from app.platform.open_files import open_file_limit

log = logging.getLogger(__name__)

# llama-server (cpp-httplib) closes an idle connection after 5 s; reuse ours for less.
KEEPALIVE_SECONDS = 2.0


class ApiServerError(RuntimeError):
    """The API cannot be served; the message says why and what to change."""


# The modules whose ``add_routes`` make up the API, in the order their routes are listed.
ROUTE_MODULES = (
    lmstudio,
    lmstudio_ws,
    downloads,
    proxy,
    clients,
    responses,
    rest_v0,
    chat_v1,
    ps,
    stats,
    control,
)


def add_routes(app: web.Application) -> None:
    """Every route the API answers."""
    for module in ROUTE_MODULES:
        module.add_routes(app)


def routes(app: web.Application) -> list[tuple[str, str]]:
    """``(method, path)`` of every route of ``app`` as its router holds them, a parameter
    shown as ``{name}`` (``/api/v0/models/{model}``); the HEAD that comes with a GET is left
    out. The 404 page lists these, and the fuzz test sends to each."""
    return [
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    ]


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except aiohttp.ServerTimeoutError:  # a llama-server went silent mid-answer: 504, named
        port = UPSTREAM_PORT.get()
        if port is None:
            raise
        return timed_out(request.app[CONTEXT], port).response()
    except web.HTTPException as e:
        if e.status == 404:
            return error_response(
                404,
                f"No such endpoint: {clip(request.method, 20)} {clip(request.path)}. This "
                "server answers "
                + ", ".join(dict.fromkeys(path for _, path in routes(request.app))),
                code="not_found",
            )
        if e.status == 405:
            return error_response(
                405,
                f"{clip(request.method, 20)} is not allowed on {clip(request.path)}",
                code="bad_method",
            )
        if e.status >= 400:
            return error_response(e.status, e.reason, code="http_error")
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as e:
        log.exception("API request %s %s failed", request.method, request.path)
        return error_response(500, f"Internal error: {e}", type_="server_error")


class ApiServer:
    """The core service that answers the LM Studio-compatible API."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        settings: SettingsSource,
        notices: NoticeBus,
        *,
        stats: SpeedStats | None = None,
        gpu_probe: GpuProbe | None = None,
        downloads: Downloads | None = None,
        workers: Workers | None = None,
        peers: Peers | None = None,
        runs: Callable[[], Any] | None = None,
        rescan: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.downloads = downloads
        self.workers = workers
        self.peers = peers
        self._runs = runs  # the app's RunService, for POST /api/v0/runs
        self._rescan = rescan  # for POST /api/v0/models/rescan
        self._gpu_probe = gpu_probe  # per-process GPU memory for GET /api/v0/ps
        self.stats = stats if stats is not None else SpeedStats()
        self._settings = settings
        self._notices = notices
        self.error: str | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._ctx: ApiContext | None = None
        self.guard: Guard | None = None  # the checks and limits in force (tests read them)
        self.connections: ConnectionTable | None = None
        self._restore_loop: Callable[[], None] | None = None
        self._unwatch: Callable[[], None] | None = None

    @property
    def settings(self) -> Settings:
        return self._settings()

    @property
    def host(self) -> str:
        return self.settings.API_HOST

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def app(self) -> web.Application | None:
        """The aiohttp application while serving (its state: ``app[lmstudio_ws.SDK]``)."""
        return self._runner.app if self._runner is not None else None

    # ── Service life cycle ─────────────────────────────────────────────────────
    async def start(self) -> None:
        """Serve, or tell the user why not; the app keeps running either way."""
        try:
            await self.serve()
        except ApiServerError as e:
            self.error = str(e)
            self._notices.emit(Notice(Level.ERROR, "The LM Studio API is off", str(e)))

    async def serve(self) -> None:
        """Bind and serve; raises ``ApiServerError`` with a message a person can act on."""
        s = self.settings
        where = f"{s.API_HOST}:{s.API_PORT}"
        if not s.API_ALLOW_REMOTE and not await is_loopback(s.API_HOST):
            raise ApiServerError(
                f"Refusing to serve the API on {where}: {s.API_HOST} is not a loopback "
                "address, so other machines could use your models. Set API_HOST=127.0.0.1, "
                "or set API_ALLOW_REMOTE=true (with an API_KEY) to allow it."
            )
        key = s.API_KEY.get_secret_value()
        refusals = RefusalLog()
        # Host, Origin/CORS, key, body limits first
        guard = self.guard = Guard(s, refusals, open_paths=lmstudio_ws.OPEN_PATHS)
        app = web.Application(
            # log_refusals outermost: one log line for every refusal the guard did not log
            # then requests for a peer's model: past the same guard as the app's own
            middlewares=[log_refusals, *guard.middlewares(), json_errors, peers.forward_to_peers],
            client_max_size=guard.max_body,
        )
        app[REFUSALS] = refusals
        guard.install(app)
        upstream = upstream_session(KEEPALIVE_SECONDS)  # to peers
        inflight = InFlight(hung_error)
        links = ServerLinks(inflight.busy, KEEPALIVE_SECONDS)
        self._ctx = ApiContext(
            lifecycle=self.lifecycle,
            settings=self._settings,
            upstream=upstream,
            links=links,
            inflight=inflight,
            stats=self.stats,
            gpu_probe=self._gpu_probe,
            downloads=self.downloads,
            workers=self.workers,
            peers=self.peers,
            runs=self._runs,
            rescan=self._rescan,
        )
        app[CONTEXT] = self._ctx
        add_routes(app)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        self.connections = connection_table(s, refusals)
        try:
            site = GuardedSite(runner, s.API_HOST, s.API_PORT, self.connections, **handler_args(s))
            await site.start()
        except OSError as e:
            await runner.cleanup()
            await upstream.close()
            await links.close()
            if e.errno == errno.EADDRINUSE:
                hint = (
                    "Another program uses that port (LM Studio's server?): quit it, or set "
                    "API_PORT to a free port."
                )
            else:
                hint = "Check API_HOST and API_PORT."
            raise ApiServerError(
                f"Cannot serve the API on {where}: {e.strerror or e}. {hint}"
            ) from None
        self._restore_loop = watch_accept_errors(
            asyncio.get_running_loop(), refusals, open_file_limit
        )
        self._runner = runner
        # a server declared hung: its requests in flight are answered at once
        unwatch = self.lifecycle.watch_faults(self._ctx.inflight.trip)
        # a stop begins: its server's idle connections are closed, so it exits at once
        unfollow = self.lifecycle.manager.subscribe(links.on_state)

        def unsubscribe() -> None:
            unwatch()
            unfollow()

        self._unwatch = unsubscribe
        self.port = runner.addresses[0][1]
        self.error = None
        log.info(
            "LM Studio-compatible API on %s (RUN_MODE=%s, JIT_LOAD=%s, key %s)",
            self.url,
            s.RUN_MODE,
            s.JIT_LOAD,
            "required" if key else "not required",
        )

    async def stop(self) -> None:
        if self._restore_loop is not None:
            self._restore_loop()
            self._restore_loop = None
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._ctx is not None and self._ctx.upstream is not None:
            await self._ctx.upstream.close()
            self._ctx.upstream = None
        if self._ctx is not None and self._ctx.links is not None:
            await self._ctx.links.close()
            self._ctx.links = None
        self.port = None
