"""Build the core with every service the settings ask for; the tray, --headless and the
tests share it."""

from __future__ import annotations

from app.config import Settings
from app.core.app_core import AppCore
from app.core.clock import Clock
from app.core.downloads.listing import AfterDownload
from app.core.downloads.service import Downloads
from app.core.downloads.staging import DiskFree
from app.core.gpu.probe import GpuProber
from app.core.lifecycle.files import FolderWatch
from app.core.lifecycle.idle import IdleUnloader
from app.core.lifecycle.memory import free_memory
from app.core.lifecycle.placement import estimate_need
from app.core.lifecycle.prefetch import Prefetcher
from app.core.lifecycle.supervisor import RestartPolicy, Supervisor
from app.core.runs.deps import RunDeps
from app.core.runs.service import RunService
from app.core.settings.settings_apply import apply_settings
from app.paths import AppPaths
from app.platform.processes import ProcessPlatform


def build_core(
    settings: Settings,
    paths: AppPaths,
    *,
    platform: ProcessPlatform | None = None,
    schedule: bool = True,
    policy: RestartPolicy | None = None,
    gpu: GpuProber | None = None,
    api: bool | None = None,
    runs: bool = True,
    supervise: bool = True,
    run_options: dict | None = None,
    disk_free: DiskFree | None = None,
    clock: Clock | None = None,
) -> AppCore:
    """``policy``: the supervisor's (None: from the settings); ``api``: serve the API (None:
    ``API_ENABLED``); ``runs``: attach FamilyLog runs; ``supervise``: restart crashed and
    hung servers; ``run_options``: passed to ``RunService`` (tests: a kill delay);
    ``disk_free``: the downloads' free-space source (tests: a small disk); ``clock``: the
    supervisor's and the runs' (tests move it by hand to check the real delays)."""
    # One GPU prober for the models window and placement (RUN_MODE=auto).
    gpu = gpu or GpuProber()
    core = AppCore(settings, paths, platform=platform, gpu_free=gpu.free_bytes, gpu_probe=gpu.probe)
    core.gpu = gpu
    # Other machines: the RPC workers a model may run across (checked, watched while used)
    # and this GPU shared with them; built before the supervisor, which asks whether a
    # failed server's worker is gone before it starts it again.
    add_machines(core, paths, platform)
    # Restarts crashed and hung servers. First in, so it is the last service stopped.
    if supervise:
        assert core.workers is not None
        core.services.insert(
            0,
            Supervisor(
                core.lifecycle,
                core.notices,
                core.live,
                policy,
                clock=clock,
                remote_lost=core.workers.stopped_by_loss,
            ),
        )
    core.idle = IdleUnloader(core.lifecycle, core.live)
    core.add_service(core.idle)
    # Model files that come, go or move: rescanned when the folders change.
    core.watch = FolderWatch(core.rescanner, core.live)
    core.add_service(core.watch)
    # Switch mode: read the next model into the page cache while the current one serves.
    core.prefetch = Prefetcher(core.lifecycle, core.live)
    core.add_service(core.prefetch)
    # Models from the Hugging Face Hub: before the API (which serves their REST endpoints)
    # so it stops after it; a download in progress pauses and resumes at the next start.
    core.downloads = build_downloads(core, paths, gpu, disk_free)
    core.add_service(core.downloads)
    # The API first: services stop newest first, so a run in progress is cancelled while
    # the API it may be talking to is still up.
    if settings.API_ENABLED if api is None else api:
        from app.core.api.server import ApiServer

        core.api = ApiServer(
            core.lifecycle,
            core.live,
            core.notices,
            stats=core.stats,
            gpu_probe=gpu.probe,
            downloads=core.downloads,
            workers=core.workers,
            peers=core.peers,
            runs=lambda: core.runs,
            rescan=core.rescanner.rescan,
        )
        core.add_service(core.api)
    if runs:
        # FamilyLog runs: "Process now", the daily schedule (off for a one-off --process-now).
        deps = RunDeps(
            lifecycle=core.lifecycle,
            settings=core.live,
            notices=core.notices,
            runs_dir=paths.runs_dir,
            history_file=paths.history_file,
            api_port=core.api_port,
        )
        options = {
            "schedule": schedule,
            "platform": platform,
            "clock": clock,
            **(run_options or {}),
        }
        core.runs = RunService(deps, **options)
        core.add_service(core.runs)
    return core


def add_machines(core: AppCore, paths: AppPaths, platform: ProcessPlatform | None) -> None:
    """The RPC workers the app uses, this GPU shared as one, and the peer servers."""
    from app.core.machines.peers import Peers
    from app.core.machines.rpc_binary import local_version, rpc_server_path
    from app.core.machines.shared_worker import SharedWorker
    from app.core.machines.workers import Workers

    async def version():
        binary = rpc_server_path(core.manager.server_path)
        return await local_version(binary) if binary is not None else None

    core.workers = Workers(
        core.live,
        core.lifecycle,
        core.notices,
        local_version=version,
        subscribe=core.live.subscribe,
    )
    core.add_service(core.workers)
    core.shared_worker = SharedWorker(
        core.live,
        lambda: core.manager.server_path,
        paths.log_dir,
        core.notices,
        platform=platform,
        subscribe=core.live.subscribe,
    )
    core.add_service(core.shared_worker)
    core.peers = Peers(core.live, subscribe=core.live.subscribe)
    core.add_service(core.peers)


def build_downloads(
    core: AppCore, paths: AppPaths, gpu: GpuProber, disk_free: DiskFree | None = None
) -> Downloads:
    """The download service, wired to the core: a finished download is listed (and made a
    FamilyLog role's model when asked); "will it fit" weighs placement's free memory and
    what the app's loaded models hold."""

    def loaded_need() -> int:
        ctx = core.live().LLAMA_CTX_SIZE
        return sum(
            estimate_need(i.entry, i.context_length or ctx)
            for i in core.lifecycle.snapshot()
            if i.entry is not None and i.status.state.alive
        )

    after = AfterDownload(
        core.catalogue,
        core.live,
        paths,
        apply=lambda new: apply_settings(core.live, core.lifecycle, new),
    )
    options = {"disk_free": disk_free} if disk_free is not None else {}
    return Downloads(
        core.live,
        paths.downloads_file,
        notices=core.notices,
        on_complete=after,
        free_memory=lambda: free_memory(core.live(), gpu.free_bytes),
        reclaimable=loaded_need,
        **options,
    )


def setup_downloads(settings: Settings, paths: AppPaths, gpu: GpuProber | None = None) -> Downloads:
    """The set-up window's download service (there is no core yet): a finished download
    becomes FamilyLog's role model in the settings file; what is left when the window
    closes pauses, and the core's own service resumes it."""
    gpu = gpu or GpuProber()
    return Downloads(
        lambda: settings,
        paths.downloads_file,
        on_complete=AfterDownload(None, lambda: settings, paths),
        free_memory=lambda: free_memory(settings, gpu.free_bytes),
    )
