"""Build the core with every service the settings ask for; the tray and --headless share it."""

from __future__ import annotations

from app.config import Settings
from app.core.app_core import AppCore
from app.core.gpu.probe import GpuProber
from app.core.runs.service import RunService
from app.core.servers.supervisor import Supervisor
from app.paths import AppPaths
from app.platform.processes import ProcessPlatform


def build_core(
    settings: Settings,
    paths: AppPaths,
    *,
    platform: ProcessPlatform | None = None,
    schedule: bool = True,
) -> AppCore:
    core = AppCore(settings, paths, platform=platform)
    # Restarts crashed and hung servers. First in, so it is the last service stopped.
    supervisor = Supervisor(core)
    core.add_service(supervisor)
    # One GPU prober for the models window and the API's placement (RUN_MODE=auto).
    core.gpu = GpuProber()
    # The API first: services stop newest first, so a run in progress is cancelled while
    # the API it may be talking to is still up.
    if settings.API_ENABLED:
        from app.core.api.server import ApiServer

        core.api = ApiServer(core, settings, gpu_free=core.gpu.free_bytes)
        core.add_service(core.api)
        # the hung-server probe leaves alone a server that is busy answering requests
        supervisor.set_idle_check(lambda port: core.api.pool.in_flight(port) == 0)
    # FamilyLog runs: "Process now", the daily schedule (off for a one-off --process-now).
    core.runs = RunService(core, schedule=schedule, platform=platform)
    core.add_service(core.runs)
    return core
