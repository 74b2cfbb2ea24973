"""``GET /api/v0/ps``: the loaded models, for ``familylog-tray --ps`` (ours, not LM Studio's).

One row per model process the app has: key, role, type, state, port, PID, context length,
memory (the process's resident memory: llama-server's own share of the GPU is not
measured per process), seconds until its idle unload, the requests it served, and its
live speed (``speed_fields``, as ``GET /api/v0/stats``).
"""

from __future__ import annotations

import time
from typing import Any

import psutil
from aiohttp import web

from app.core.api.common import CONTEXT, ApiContext
from app.core.models.lifecycle import Instance
from app.core.models.stats import speed_fields


def _rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def row(inst: Instance, idle_default: float, now: float) -> dict[str, Any]:
    ttl = inst.ttl if inst.ttl is not None else idle_default
    if ttl <= 0 or not inst.ready:
        left = None
    elif inst.in_flight or inst.held_by:
        left = ttl
    else:
        left = max(0.0, inst.last_used + ttl - now)
    entry = inst.entry
    return {
        "key": inst.key,
        "role": entry.role if entry else None,
        "type": entry.type if entry else None,
        "state": inst.state.value,
        "port": inst.port,
        "pid": inst.pid,
        "context_length": inst.context_length,
        "memory_bytes": _rss(inst.pid),
        "memory_kind": "ram",
        "ttl_seconds": ttl if ttl > 0 else None,
        "idle_unload_in_seconds": None if left is None else round(left, 1),
        "in_flight": inst.in_flight,
        "held_by": list(inst.held_by),
        "requests_served": inst.requests,
    }


async def ps(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    idle = c.settings().IDLE_UNLOAD_MINUTES * 60.0
    now = time.time()
    rows = [
        {**row(i, idle, now), "speed": speed_fields(c.stats.get(i.key))}
        for i in c.lifecycle.snapshot()
        if i.state.alive
    ]
    return web.json_response({"models": rows})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v0/ps", ps)
