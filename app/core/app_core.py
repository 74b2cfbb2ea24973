"""AppCore: the settings, the manager and the model profiles, put together.

The tray and the headless runner both drive this object; it holds no Qt.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from app.config import Settings
from app.core.models.profiles import ModelProfile, profiles_from_settings
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.binary import resolve_server_path
from app.core.servers.external import ExternalServer, find_external
from app.core.servers.manager import LlamaServerManager, ServerExitedError
from app.core.servers.ownership import OwnershipRecord
from app.core.servers.ports import PortInUseError
from app.core.servers.states import ServerState, ServerStatus, StateEvent
from app.core.settings.secure_files import secure_existing
from app.paths import AppPaths
from app.platform.processes import ProcessPlatform

if TYPE_CHECKING:
    from app.core.api.server import ApiServer
    from app.core.gpu.probe import GpuProber
    from app.core.runs.service import RunService

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.notices = NoticeBus()
        self.record = OwnershipRecord(paths.ownership_file)
        self.manager = LlamaServerManager(
            resolve_server_path(settings),
            log_dir=paths.log_dir,
            platform=platform,
            record=self.record,
            log_max_bytes=settings.LOG_MAX_BYTES,
            log_backups=settings.LOG_BACKUPS,
            api_key=settings.API_KEY.get_secret_value() or None,
            check_binary=False,
            private_ports=lambda: not self.settings.llama_ports_open,
        )
        self.profiles: dict[str, ModelProfile] = profiles_from_settings(settings)
        self.manager.subscribe(self._on_state)
        self.services: list[Service] = []
        self.api: ApiServer | None = None  # set by build_core when API_ENABLED
        self.gpu: GpuProber | None = None  # set by build_core
        self.runs: RunService | None = None  # FamilyLog runs, attached by build_core
        # Ports held by a process the app did not start: shown as "external", never killed.
        self.external: dict[int, ExternalServer] = {}
        self._started = False

    def add_service(self, service: Service) -> None:
        """Attach something that runs with the core (the API server, the schedule)."""
        self.services.append(service)

    # ── Life cycle ────────────────────────────────────────────────────────────
    async def start(self) -> None:
        """Reap what an earlier run left behind, report foreign servers on our ports, then
        start the services."""
        loop = asyncio.get_running_loop()
        reaped = await loop.run_in_executor(None, self.record.reap_orphans)
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
        for service in self.services:
            await service.start()
        self._started = True

    def configured_ports(self) -> dict[int, str]:
        """``{port: what uses it}`` for every llama-server port in the settings."""
        uses: dict[int, list[str]] = {}
        for p in self.profiles.values():
            if p.configured:
                uses.setdefault(p.port, []).append(p.title)
        uses.setdefault(self.settings.LLAMA_PORT, []).append("switch mode")
        return {port: " and ".join(u) for port, u in sorted(uses.items())}

    def _own_pids(self) -> set[int]:
        pids = {st.pid for st in self.manager.statuses().values() if st.pid}
        return pids | {e.pid for e in self.record.entries()}

    async def refresh_external(self) -> dict[int, ExternalServer]:
        """Look for foreign processes on the configured ports; tell the user about new ones."""
        ports = self.configured_ports()
        found = await asyncio.get_running_loop().run_in_executor(
            None, find_external, list(ports), self._own_pids()
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

    async def load_startup_profiles(self) -> None:
        """Load the profiles marked "load at start"; a failure is reported, not fatal."""
        for profile in self.profiles.values():
            if profile.load_at_start and profile.configured:
                try:
                    await self.load_profile(profile.name)
                except Exception as e:  # already reported to the user by _reported
                    log.warning("Loading %s at start failed: %s", profile.title, e)

    async def stop(self) -> None:
        """Stop the services (newest first), then every server the app started."""
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("Stopping %s failed", type(service).__name__)
        await self.manager.shutdown()
        self._started = False

    # ── Profiles ──────────────────────────────────────────────────────────────
    def profile(self, name: str) -> ModelProfile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(self.profiles)
            raise KeyError(f"Unknown model profile {name!r}; known: {known}") from None

    def profile_for_status(self, status: ServerStatus) -> ModelProfile | None:
        for p in self.profiles.values():
            if status.spec and p.model_path and status.spec.model_path == p.model_path:
                return p
        return None

    def ports_of(self, profile: ModelProfile) -> list[int]:
        """Ports on which this profile's model is starting or ready."""
        return [
            port
            for port, st in self.manager.statuses().items()
            if st.state in (ServerState.STARTING, ServerState.READY)
            and st.spec is not None
            and st.spec.model_path == profile.model_path
        ]

    def extra_args_for(self, profile: ModelProfile) -> list[str]:
        """``-lv 4``, ``LLAMA_EXTRA_ARGS``, then ``--alias <key>``, so llama-server names the model by
        its LM Studio key (``model`` in its answers, ``/v1/models``) instead of its path.

        Left out when the user names the model already (``--alias``/``-a`` in
        ``LLAMA_EXTRA_ARGS``, or ``LLAMA_ARG_ALIAS`` in the environment), and for a key
        with a comma (llama-server splits aliases on commas).
        """
        # -lv 4 makes llama-server log its buffer sizes (model / KV / compute), which the
        # models window shows; the user's own arguments come after and win.
        args = ["-lv", "4", *self.settings.extra_args]
        key = profile.model_id
        named = any(a in ("--alias", "-a") or a.startswith("--alias=") for a in args)
        if key and "," not in key and not named and "LLAMA_ARG_ALIAS" not in os.environ:
            args = [*args, "--alias", key]
        return args

    def _launch_kwargs(self, profile: ModelProfile) -> dict:
        s = self.settings
        return {
            "n_gpu_layers": s.LLAMA_GPU_LAYERS,
            "ctx_size": s.LLAMA_CTX_SIZE,
            "mmproj": profile.mmproj,
            "extra_args": self.extra_args_for(profile),
            "timeout": s.LLAMA_READY_TIMEOUT,
        }

    async def load_profile(self, name: str, port: int | None = None) -> ServerStatus:
        """Load a profile on ``port`` (default: its own port, the parallel layout)."""
        profile = self.profile(name)
        port = port or profile.port
        return await self._reported(
            f"Loading {profile.title} failed",
            port,
            lambda: self.manager.load_model(
                profile.model_path, port=port, **self._launch_kwargs(profile)
            ),
        )

    async def switch_single_port(self, name: str) -> ServerStatus:
        """The seed's approach A: put this profile on ``LLAMA_PORT``, replacing what runs there."""
        profile = self.profile(name)
        port = self.settings.LLAMA_PORT
        return await self._reported(
            f"Switching to {profile.title} failed",
            port,
            lambda: self.manager.switch_model(
                port, profile.model_path, **self._launch_kwargs(profile)
            ),
        )

    async def unload_port(self, port: int) -> None:
        await self._reported(
            f"Unloading port {port} failed", port, lambda: self.manager.unload_model(port)
        )

    async def unload_all(self) -> None:
        await self.manager.shutdown()

    async def _reported(self, title: str, port: int, action: Callable[[], Awaitable[T]]) -> T:
        """Run a user action; any failure reaches the user as a notice with the log to read."""
        try:
            result = await action()
        except PortInUseError as e:
            holder = e.holder
            self.external[port] = ExternalServer(
                port,
                holder.pid if holder else None,
                holder.name if holder else None,
                holder.cmdline if holder else None,
            )
            self.notices.emit(Notice(Level.ERROR, title, str(e), None))
            raise
        except (FileNotFoundError, PermissionError) as e:
            self.notices.emit(Notice(Level.ERROR, title, str(e), None))
            raise
        except (ServerExitedError, TimeoutError, RuntimeError, OSError) as e:
            self.notices.emit(Notice(Level.ERROR, title, str(e), self.manager.log_path(port)))
            raise
        self.external.pop(port, None)
        return result

    def _on_state(self, event: StateEvent) -> None:
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
