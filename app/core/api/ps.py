"""``GET /api/v0/ps``: the loaded models, for ``familylog-tray --ps`` (ours, not LM Studio's).

One row per model process the app has: key, role, type, state ("not responding" while its
health check is unanswered), what became of its file (moved, changed), port, PID, context length,
memory (the GPU memory the driver reports for the process, else its resident memory), seconds until its idle unload, the requests it served, and its
live speed (``speed_fields``, as ``GET /api/v0/stats``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psutil
from aiohttp import web

from app.core.api.common import CONTEXT, ApiContext
from app.core.gpu.snapshot import GpuSnapshot
from app.core.lifecycle.instance import Instance
from app.core.models.stats import speed_fields

log = logging.getLogger(__name__)


def _rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def _memory(pid: int | None, gpu: GpuSnapshot | None) -> dict[str, Any]:
    """GPU memory the process holds when the driver tells, else its resident memory."""
    mib = gpu.gpu_mib_of(pid) if gpu is not None and pid is not None else None
    if mib:
        return {"memory_bytes": int(mib * 1024 * 1024), "memory_kind": "vram"}
    return {"memory_bytes": _rss(pid), "memory_kind": "ram"}


def row(
    inst: Instance, idle_default: float, now: float, gpu: GpuSnapshot | None = None
) -> dict[str, Any]:
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
        "state": inst.state.value if inst.responding else "not responding",
        "file": inst.file_note,  # "file moved or deleted", "file changed: restart to use…"
        "port": inst.port,
        "pid": inst.pid,
        "context_length": inst.context_length,
        **_memory(inst.pid, gpu),
        "ttl_seconds": ttl if ttl > 0 else None,
        "idle_unload_in_seconds": None if left is None else round(left, 1),
        "in_flight": inst.in_flight,
        "held_by": list(inst.held_by),
        "requests_served": inst.requests,
        # what it actually runs with (its command line read back), by models.ini's keys
        "settings": inst.settings.by_key(),
    }


async def ps(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    idle = c.settings().IDLE_UNLOAD_MINUTES * 60.0
    now = time.time()
    insts = [i for i in c.lifecycle.snapshot() if i.state.alive]
    gpu = None
    pids = [i.pid for i in insts if i.pid]
    if c.gpu_probe is not None and pids:
        try:  # nvidia-smi can block: off the loop
            gpu = await asyncio.get_running_loop().run_in_executor(None, c.gpu_probe, pids)
        except Exception as e:  # no GPU figures: RSS it is
            log.debug("GPU probe for --ps failed: %s", e)
    rows = [{**row(i, idle, now, gpu), "speed": speed_fields(c.stats.get(i.key))} for i in insts]
    return web.json_response({"models": rows})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v0/ps", ps)
