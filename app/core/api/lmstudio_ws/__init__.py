"""LM Studio's SDK protocol (lmstudio-python, lmstudio-js, ``lms``) on the API port.

``GET /lmstudio-greeting`` answers the SDKs' probe; ``ws://host:port/<namespace>`` is one
websocket per namespace, behind the same Host/Origin guard as every route (a browser can
open websockets to localhost). ``system``, ``llm`` and ``embedding`` are served through the
same lifecycle as the REST API; LM Studio's other namespaces answer every call with an error
that names what is not served and what to use instead. One module per job: ``auth`` (the
first packet), ``connection`` (calls and channels), ``loading``, ``instances``, ``llm`` and
``prediction``, ``embedding``, ``system``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from app.core.api.common import CONTEXT, error_response
from app.core.api.lmstudio_ws import embedding, llm, system
from app.core.api.lmstudio_ws.connection import Connection, Namespace
from app.core.api.lmstudio_ws.errors import INSTEAD
from app.core.api.lmstudio_ws.state import SDK, SdkState
from app.core.lifecycle.instance import InstanceEvent
from app.core.servers.states import ServerState

NAMESPACES = {
    "system": Namespace("system", system.RPC, system.CHANNELS),
    "llm": Namespace("llm", llm.RPC, llm.CHANNELS),
    "embedding": Namespace("embedding", embedding.RPC, embedding.CHANNELS),
    **{name: Namespace(name, {}, {}) for name in INSTEAD},
}
GREETING = "/lmstudio-greeting"
# Reached without an Authorization header: the probe (it only tells that an LM Studio API is
# here) and the websockets (they authenticate in their first packet).
OPEN_PATHS = frozenset({GREETING, *(f"/{name}" for name in NAMESPACES)})
MIB = 1024 * 1024
SHUTDOWN_WAIT = 2.0  # seconds the clients get to answer the close when the app stops
HEARTBEAT = 30.0  # seconds between pings; a client that does not answer is dropped
UNSUBSCRIBE: web.AppKey[Callable[[], None]] = web.AppKey("familylog_sdk_unsubscribe")


async def greeting(_request: web.Request) -> web.Response:
    return web.json_response({"lmstudio": True})


async def websocket(request: web.Request) -> web.StreamResponse:
    ns = NAMESPACES[request.path.strip("/")]
    c = request.app[CONTEXT]
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT, max_msg_size=max(MIB, int(c.settings().API_MAX_BODY_MB * MIB))
    )
    if not ws.can_prepare(request).ok:
        return error_response(
            426,
            f"{request.path} is LM Studio's SDK websocket for the '{ns.name}' namespace: "
            "connect with LM Studio's SDK (lmstudio-python, lmstudio-js) at "
            f"ws://{request.host}, or use the REST API (GET /api/v1/models).",
            code="upgrade_required",
            headers={"Upgrade": "websocket"},
        )
    await ws.prepare(request)
    state = request.app[SDK]
    conn = Connection(ws, request, ns, state, c)
    state.connections.add(conn)
    try:
        await conn.serve()
    finally:
        state.connections.discard(conn)
    return ws


async def _start(app: web.Application) -> None:
    state = app[SDK]

    def forget(event: InstanceEvent) -> None:
        if event.new is ServerState.STOPPED:
            state.names.pop(event.key, None)

    app[UNSUBSCRIBE] = app[CONTEXT].lifecycle.subscribe(forget)


async def _shutdown(app: web.Application) -> None:
    """Close every SDK websocket (the clients see the server go), all at once and bounded:
    a client that does not answer the close is cut when the runner stops."""
    closing = [asyncio.ensure_future(conn.shut()) for conn in app[SDK].connections]
    if closing:
        await asyncio.wait(closing, timeout=SHUTDOWN_WAIT)


async def _cleanup(app: web.Application) -> None:
    app[UNSUBSCRIBE]()


def add_routes(app: web.Application) -> None:
    app[SDK] = SdkState()
    app.router.add_get(GREETING, greeting)
    for name in NAMESPACES:
        app.router.add_get(f"/{name}", websocket)
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
