"""The running app's controls for its own command line (ours, not LM Studio's), so that a
command given beside a headless app goes to that app instead of touching its servers:

- ``POST /api/v0/runs``: start a FamilyLog run ("Process now"), what ``familylog-tray
  --process-now`` sends to a headless app; 202 when started, 409 while one runs. Only a
  client on this machine (a loopback peer) may start a run.
- ``GET /api/v0/runs``: the run in progress (if any) and the last runs.
- ``POST /api/v0/models/rescan``: read the model folders again (``familylog-tray
  --rescan``); what came, what went, and what became of the running models' files.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from app.core.api.common import CONTEXT, ApiContext, ApiError


def _local_peer(request: web.Request) -> bool:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    try:
        return ipaddress.ip_address(str(peer[0]).split("%")[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False


def _runs(c: ApiContext):
    runs = c.runs() if c.runs is not None else None
    if runs is None:
        raise ApiError(503, "This app runs no FamilyLog runs.", code="runs_unavailable")
    return runs


async def start_run(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    if not _local_peer(request):
        raise ApiError(403, "Runs start only from this computer.", code="not_local")
    runs = _runs(c)
    result = runs.process_now("command line")
    if not result.started:
        raise ApiError(409, result.message, code="run_in_progress")
    st = runs.status()
    return web.json_response(
        {"started": True, "message": result.message, "log_file": str(st.log_file)}, status=202
    )


async def list_runs(request: web.Request) -> web.Response:
    runs = _runs(request.app[CONTEXT])
    st = runs.status()
    now = {
        "state": str(st.state),
        "trigger": st.trigger or None,
        "pid": st.pid,
        "elapsed_seconds": round(st.elapsed, 1),
        "log_file": str(st.log_file) if st.log_file else None,
    }
    recent = [r.model_dump(mode="json", exclude={"processes"}) for r in runs.recent_runs(10)]
    return web.json_response({"status": now, "runs": recent})


async def rescan(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    if c.rescan is None:
        raise ApiError(503, "This app cannot rescan its model folders.", code="rescan_unavailable")
    result = await c.rescan()
    return web.json_response({**result.as_json(), "message": result.words()})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v0/runs", start_run)
    app.router.add_get("/api/v0/runs", list_runs)
    app.router.add_post("/api/v0/models/rescan", rescan)
