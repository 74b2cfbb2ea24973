"""Putting the models where a FamilyLog run expects them, and putting things back after.

Before the run (``prepare``):
- ``FAMILYLOG_MANAGES_MODELS``: FamilyLog starts llama-server itself, so the app unloads
  its own servers to free the ports and the GPU, and leaves FamilyLog's servers alone.
- otherwise ``RUN_PRELOAD`` (none/vision/llm/both) loads the models FamilyLog's section-3
  setup (``CONNECTION_TYPE=offline``, fixed ports) talks to directly.
- the child's environment gets ``CONNECTION_TYPE``, ``LLAMA_VISION_PORT`` and
  ``LLAMA_LLM_PORT`` set to where the app's servers are, and the API address.

After the run (``finish``): ``AFTER_RUN`` keep / unload / restore what was loaded before; a
FamilyLog that manages its models gets the app's models back unless ``AFTER_RUN=unload``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.models.profiles import LLM, VISION
from app.core.servers.ports import wait_port_free
from app.core.servers.states import LaunchSpec, ServerState

if TYPE_CHECKING:
    from app.core.app_core import AppCore

log = logging.getLogger(__name__)

PRELOADS: dict[str, tuple[str, ...]] = {
    "none": (),
    "vision": (VISION,),
    "llm": (LLM,),
    "both": (VISION, LLM),
}
Note = Callable[[str], None]


class PrepareError(RuntimeError):
    """The run cannot start; the message says what to fix."""


@dataclass
class Prepared:
    """What ``prepare`` did, for the run and for ``finish``."""

    env: dict[str, str]
    before: list[LaunchSpec] = field(default_factory=list)
    familylog_logs: Path | None = None  # FamilyLog's own logs/ while it manages its models


class ModelPlacement:
    def __init__(self, core: AppCore, base_env: Mapping[str, str] | None = None) -> None:
        self.core = core
        self._base_env = base_env
        self.port_release_timeout = 10.0  # how long FamilyLog's own server may hold a port

    @property
    def settings(self):
        return self.core.settings

    def loaded_specs(self) -> list[LaunchSpec]:
        """The servers the app has starting or ready now."""
        return [
            st.spec
            for st in self.core.manager.statuses().values()
            if st.spec is not None and st.state in (ServerState.STARTING, ServerState.READY)
        ]

    async def prepare(self, note: Note) -> Prepared:
        s = self.settings
        before = self.loaded_specs()
        if s.FAMILYLOG_MANAGES_MODELS:
            if before:
                names = ", ".join(f"{Path(b.model_path).stem} (port {b.port})" for b in before)
                note(f"FamilyLog manages its own models: unloading the app's models first: {names}")
                await self.core.unload_all()
            logs = Path(s.FAMILYLOG_DIR).expanduser() / "logs"
            return Prepared(self.child_env(), before, logs)
        for name in PRELOADS[s.RUN_PRELOAD]:
            await self._preload(name, note)
        return Prepared(self.child_env(), before)

    async def _preload(self, name: str, note: Note) -> None:
        s = self.settings
        profile = self.core.profile(name)
        problem = profile.problem()
        if problem:
            raise PrepareError(
                f"RUN_PRELOAD={s.RUN_PRELOAD} needs the {profile.title} model, but: {problem} "
                "Fix the model file in Settings or set RUN_PRELOAD to what FamilyLog needs."
            )
        ready = [
            p
            for p in self.core.ports_of(profile)
            if self.core.manager.status(p).state is ServerState.READY
        ]
        if ready:
            note(f"{profile.title} model {profile.model_id} already loaded on port {ready[0]}")
            return
        single = s.RUN_MODE == "switch" and len(PRELOADS[s.RUN_PRELOAD]) == 1
        where = s.LLAMA_PORT if single else profile.port
        note(f"Loading the {profile.title} model {profile.model_id} on port {where}…")
        try:
            if single:
                st = await self.core.switch_single_port(name)
            else:
                st = await self.core.load_profile(name)
        except Exception as e:
            raise PrepareError(f"Loading the {profile.title} model for the run failed: {e}") from e
        note(f"{profile.title} model ready on port {st.port}")

    def port_for(self, name: str) -> int:
        """Where FamilyLog finds this model: the app's server for it, else its own port."""
        profile = self.core.profile(name)
        if not self.settings.FAMILYLOG_MANAGES_MODELS:
            ports = self.core.ports_of(profile)
            if ports:
                return ports[0]
        return profile.port

    def api_port(self) -> int | None:
        """The port the app's API listens on: the bound one (``API_PORT=0`` picks a free
        port), else the setting when the API is on but not serving (another program may)."""
        api = self.core.api
        if api is not None and api.port:
            return api.port
        s = self.settings
        return s.API_PORT if s.API_ENABLED and s.API_PORT else None

    def child_env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ if self._base_env is None else self._base_env)
        env.pop("VIRTUAL_ENV", None)  # the app's venv is not FamilyLog's (uv would warn)
        env.setdefault("PYTHONUNBUFFERED", "1")  # so the log shows lines as they come
        env["CONNECTION_TYPE"] = s.CONNECTION_TYPE
        env["LLAMA_VISION_PORT"] = str(self.port_for(VISION))
        env["LLAMA_LLM_PORT"] = str(self.port_for(LLM))
        for profile in self.core.profiles.values():  # the keys the app's API answers to
            if profile.model_id:
                env[f"{profile.name.upper()}_MODEL_ID"] = profile.model_id
        server = self.core.manager.server_path
        if Path(server).is_file():
            env["LLAMA_SERVER_PATH"] = server
        port = self.api_port()
        if port:
            host = "127.0.0.1" if s.API_HOST in ("0.0.0.0", "::", "") else s.API_HOST
            host = f"[{host}]" if ":" in host else host
            env["API_PORT"] = str(port)
            env["FAMILYLOG_TRAY_API_URL"] = f"http://{host}:{port}"
        env["FAMILYLOG_TRAY_RUN"] = "1"
        return env

    async def finish(self, prepared: Prepared | None, note: Note) -> list[str]:
        """Apply ``AFTER_RUN``; returns the problems met (already logged)."""
        s = self.settings
        after = s.AFTER_RUN
        if prepared is None:
            return []
        if s.FAMILYLOG_MANAGES_MODELS and after != "unload":
            after = "restore"
        if after == "keep":
            return []
        if after == "unload":
            if self.loaded_specs():
                note("AFTER_RUN=unload: unloading the app's models")
            await self.core.unload_all()
            return []
        return await self._restore(prepared.before, note)

    async def _restore(self, before: list[LaunchSpec], note: Note) -> list[str]:
        problems: list[str] = []
        manager = self.core.manager
        wanted = {b.port: b for b in before}
        for spec in self.loaded_specs():
            if wanted.get(spec.port) != spec:
                note(f"Restoring: unloading {Path(spec.model_path).stem} from port {spec.port}")
                try:
                    await manager.unload_model(spec.port)
                except Exception as e:
                    problems.append(f"Unloading port {spec.port} failed: {e}")
        now = {sp.port: sp for sp in self.loaded_specs()}
        for spec in before:
            if now.get(spec.port) == spec:
                continue
            note(f"Restoring: loading {Path(spec.model_path).stem} on port {spec.port}")
            # FamilyLog's own server may still be letting go of the port.
            await wait_port_free(spec.port, timeout=self.port_release_timeout)
            try:
                await manager.load_model(
                    spec.model_path,
                    port=spec.port,
                    n_gpu_layers=spec.n_gpu_layers,
                    ctx_size=spec.ctx_size,
                    mmproj=spec.mmproj,
                    n_threads=spec.n_threads,
                    extra_args=list(spec.extra_args),
                    timeout=self.settings.LLAMA_READY_TIMEOUT,
                )
            except Exception as e:
                problems.append(f"Reloading {Path(spec.model_path).stem} on port {spec.port}: {e}")
        for p in problems:
            log.warning("After the run: %s", p)
        return problems
