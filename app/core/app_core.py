"""AppCore: the composition root. It builds the settings source, the manager, the catalogue
and the model lifecycle, owns the services, and hands each service only what it needs.

The tray and the headless runner both drive this object; it holds no Qt.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from app.config import Settings
from app.core.discovery.server import resolve_server_path
from app.core.gpu.snapshot import GpuProbe
from app.core.lifecycle.files import Rescanner
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.lifecycle.memory import GpuFree, free_memory
from app.core.lifecycle.placement import Worker
from app.core.logs.app_logging import follow_log_limits
from app.core.models.catalogue import Catalogue
from app.core.models.entry import ModelEntry
from app.core.models.stats import ModelStats, SpeedStats
from app.core.notices import Level, Notice, NoticeBus
from app.core.presets.service import Presets
from app.core.presets.store import PresetError, PresetStore
from app.core.servers.address import client_url
from app.core.servers.external import ExternalServer, find_external
from app.core.servers.manager import LlamaServerManager
from app.core.servers.ownership import OwnershipRecord
from app.core.servers.states import ServerState, ServerStatus, StateEvent
from app.core.settings.live import LiveSettings
from app.core.settings.secure_files import secure_existing
from app.core.slots.keeper import MIB, SlotKeeper, default_budget
from app.core.slots.store import SlotStore
from app.paths import AppPaths
from app.platform.processes import ProcessPlatform

if TYPE_CHECKING:
    from app.core.api.server import ApiServer
    from app.core.downloads.service import Downloads
    from app.core.gpu.probe import GpuProber
    from app.core.lifecycle.files import FolderWatch
    from app.core.lifecycle.idle import IdleUnloader
    from app.core.lifecycle.prefetch import Prefetcher
    from app.core.machines.peers import Peers
    from app.core.machines.shared_worker import SharedWorker
    from app.core.machines.workers import Workers
    from app.core.runs.service import RunService

log = logging.getLogger(__name__)


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AppCore:
    def __init__(
        self,
        settings: Settings,
        paths: AppPaths,
        *,
        platform: ProcessPlatform | None = None,
        gpu_free: GpuFree | None = None,
        gpu_probe: GpuProbe | None = None,
    ) -> None:
        self.live = LiveSettings(settings)
        self.paths = paths
        self.notices = NoticeBus()
        self.record = OwnershipRecord(paths.ownership_file)
        self.manager = LlamaServerManager(
            resolve_server_path(settings),
            log_dir=paths.log_dir,
            platform=platform,
            record=self.record,
            log_max_bytes=lambda: self.settings.LOG_MAX_BYTES,
            log_backups=lambda: self.settings.LOG_BACKUPS,
            api_key=settings.API_KEY.get_secret_value() or None,
            check_binary=False,
            private_ports=lambda: not self.settings.llama_ports_open,
            stop_timeout=lambda: self.settings.STOP_GRACE_SECONDS,
            on_log_problem=self._log_paused,
        )
        # the app's own log (when installed) rotates at the limits in force
        follow_log_limits(lambda: (self.settings.LOG_MAX_BYTES, self.settings.LOG_BACKUPS))
        # each model's own settings (models.ini); its other names reach the catalogue
        self.preset_store = PresetStore(paths.presets_file)
        self.catalogue = Catalogue(self.live, more_names=self._preset_names)
        self.presets = Presets(self.preset_store, self.catalogue, self.live)
        self.preset_store.subscribe(self.catalogue.refresh)  # a save: names, marks
        self.lifecycle = ModelLifecycle(
            self.manager,
            self.catalogue,
            self.live,
            self.notices,
            free_memory=lambda: free_memory(self.live(), gpu_free),
            gpu_probe=gpu_probe,
            presets=self.presets,
            workers=self._worker_room,
        )
        self.manager.subscribe(self._on_state)
        # a running model stays listed while it runs, even when its file is gone
        self.catalogue.live_files = lambda: {
            st.spec.file for st in self.manager.statuses().values() if st.spec and st.state.alive
        }
        # rescans (the tray, the API, --rescan, the folder watch) tell what became of files
        self.rescanner = Rescanner(self.lifecycle, self.notices)
        # Each model's speed, by key (survives reloads); the API's proxy feeds it.
        self.stats = SpeedStats()
        # A model's context saved before it is unloaded, restored when it loads again.
        self.slots = SlotKeeper(
            SlotStore(paths.slot_cache_dir, self.slot_budget),
            self.live,
            lambda: self.manager.server_path,
            self._prompt_speed,
            self._evaluated,
        )
        self.manager.hooks = self.slots
        self.services: list[Service] = []
        self.api: ApiServer | None = None  # set by build_core when API_ENABLED
        self.gpu: GpuProber | None = None  # set by build_core
        self.idle: IdleUnloader | None = None  # set by build_core
        self.prefetch: Prefetcher | None = None  # set by build_core
        self.watch: FolderWatch | None = None  # set by build_core
        self.runs: RunService | None = None  # FamilyLog runs, attached by build_core
        self.downloads: Downloads | None = None  # models from the hub, set by build_core
        # Other machines (set by build_core): this GPU shared as an RPC worker, other
        # machines' workers a model runs across, and peer servers whose models are listed.
        self.shared_worker: SharedWorker | None = None
        self.workers: Workers | None = None
        self.peers: Peers | None = None
        # Ports held by a process the app did not start: shown as "external", never killed.
        self.external: dict[int, ExternalServer] = {}
        self._started = False

    @property
    def settings(self) -> Settings:
        return self.live.current

    async def _worker_room(self, named: tuple[str, ...] | None) -> list[Worker]:
        """The RPC workers a load may use, checked (none before build_core adds them)."""
        return await self.workers.room(named) if self.workers is not None else []

    def slot_budget(self) -> int:
        """Bytes the saved slot contexts may take (``SLOT_CACHE_MB``; 0: sized by the roles)."""
        s = self.settings
        if s.SLOT_CACHE_MB > 0:
            return s.SLOT_CACHE_MB * MIB
        return default_budget(
            [
                e.info.kv_cache_bytes(s.LLAMA_CTX_SIZE or e.info.context_length or 4096)
                for e in self.catalogue.roles().values()
                if e.info is not None
            ]
        )

    def _model_stats(self, status: ServerStatus) -> ModelStats | None:
        spec = status.spec
        entry = self.catalogue.by_file(spec.model_path, spec.mmproj) if spec else None
        return self.stats.get(entry.key) if entry is not None else None

    def _prompt_speed(self, status: ServerStatus) -> float | None:
        """The prompt tokens per second measured for the model behind ``status``."""
        stats = self._model_stats(status)
        return stats.prompt_tokens_per_second if stats is not None else None

    def _evaluated(self, status: ServerStatus) -> int | None:
        """The tokens the model behind ``status`` has evaluated (prompt and generated) through
        the API; None with open ports, where programs may call the server directly."""
        if self.settings.llama_ports_open:
            return None
        stats = self._model_stats(status)
        return stats.prompt_tokens + stats.tokens if stats is not None else 0

    def add_service(self, service: Service) -> None:
        """Attach something that runs with the core (the API server, the schedule)."""
        self.services.append(service)

    def api_port(self) -> int | None:
        """The port the app's API listens on: the bound one (``API_PORT=0`` picks a free
        port), else the setting when the API is on but not serving (another program may)."""
        if self.api is not None and self.api.port:
            return self.api.port
        s = self.settings
        return s.API_PORT if s.API_ENABLED and s.API_PORT else None

    def api_url(self) -> str | None:
        """``http://host:port`` of the app's API as a client on this machine reaches it,
        or None when the API is off."""
        port = self.api_port()
        return client_url(self.settings.API_HOST, port) if port else None

    # ── Life cycle ────────────────────────────────────────────────────────────
    async def start(self) -> None:
        """Reap what an earlier run left behind, report foreign servers on our ports, read
        the model folders, then start the services."""
        loop = asyncio.get_running_loop()
        reaped = await self.record.reap_orphans(self.settings.STOP_GRACE_SECONDS)
        for r in reaped:
            self.notices.emit(
                Notice(
                    Level.WARNING,
                    "Stopped a leftover server",
                    f"llama-server PID {r.entry.pid} on port {r.entry.port} "
                    f"({Path(r.entry.model_path).name}) was left running by an earlier run "
                    f"of the app and has been {r.how}.",
                    self.manager.log_path(r.entry.port),
                )
            )
        await loop.run_in_executor(None, secure_existing, self.paths.settings_file)
        await self.refresh_external()
        if self.watch is not None:
            await self.watch.look_first()  # a change from here on is rescanned for
        await self.catalogue.rescan()
        for service in self.services:
            await service.start()
        self._started = True

    def configured_ports(self) -> dict[int, str]:
        """``{port: what uses it}`` for every llama-server port in the settings."""
        uses: dict[int, list[str]] = {}
        for e in self.catalogue.roles().values():
            if e.configured and e.port:
                uses.setdefault(e.port, []).append(e.title)
        uses.setdefault(self.settings.LLAMA_PORT, []).append("switch mode")
        return {port: " and ".join(u) for port, u in sorted(uses.items())}

    def _own_pids(self) -> set[int]:
        pids = {st.pid for st in self.manager.statuses().values() if st.pid}
        return pids | {e.pid for e in self.record.entries()}

    def _own_marks(self) -> set[str]:
        """The marks of the servers' groups: a wrapper's llama-server is the app's too."""
        return {e.mark for e in self.record.entries() if e.mark}

    async def refresh_external(self) -> dict[int, ExternalServer]:
        """Look for foreign processes on the configured ports; tell the user about new ones."""
        ports = self.configured_ports()
        found = await asyncio.get_running_loop().run_in_executor(
            None, find_external, list(ports), self._own_pids(), self._own_marks()
        )
        for port, ext in found.items():
            if self.external.get(port) != ext:
                self._tell_external(ext, ports.get(port, "the app"))
        self.external = found
        return found

    def _tell_external(self, ext: ExternalServer, uses: str) -> None:
        log.warning("Port %d is held by %s, not started by this app", ext.port, ext.describe())
        self.notices.emit(
            Notice(
                Level.WARNING,
                f"Port {ext.port} is taken",
                f"Port {ext.port} ({uses}) is held by {ext.describe()}, which this app did "
                f"not start. It is left running, shown as external; {uses} cannot load on "
                "this port until it stops. Stop that program or choose another port in "
                "Settings.",
            )
        )

    async def load_at_start(self) -> None:
        """Load the roles marked "load at start" and the models whose preset says
        ``load-on-startup``; a failure is reported, not fatal."""
        for entry in self.presets.to_load_at_start():
            try:
                await self.lifecycle.ensure(entry)
            except Exception as e:  # the lifecycle has told the user already
                log.warning("Loading %s at start failed: %s", entry.title, e)

    def _preset_names(self, entry: ModelEntry) -> tuple[str, ...]:
        """A model's other names from its preset (``alias``); none while it cannot be read."""
        try:
            return self.preset_store.own(entry).aliases
        except PresetError:
            return ()

    async def stop(self) -> None:
        """Stop the services (newest first), then every server the app started."""
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("Stopping %s failed", type(service).__name__)
        self.lifecycle.close()
        await self.manager.shutdown()
        self._started = False

    def _log_paused(self, status: ServerStatus, problem: str) -> None:
        self.notices.emit(Notice(Level.WARNING, f"Logging paused for {status.model_name}", problem))

    def _on_state(self, event: StateEvent) -> None:
        if event.new is ServerState.STOPPED and self.catalogue.kept:
            self.catalogue.refresh()  # a model kept listed only while it ran is gone now
        # A crash of a ready server is not the answer to any user action: tell the user here.
        if event.old is ServerState.READY and event.new is ServerState.FAILED:
            self.notices.emit(
                Notice(
                    Level.ERROR,
                    f"Server on port {event.port} crashed",
                    event.status.error or f"exit code {event.status.exit_code}",
                    event.status.log_path,
                )
            )

    def log_path(self, port: int) -> Path:
        return self.manager.log_path(port)
