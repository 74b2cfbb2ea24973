"""Putting the models where a FamilyLog run expects them, and putting things back after.

Before the run (``prepare``):
- ``FAMILYLOG_MANAGES_MODELS``: FamilyLog starts llama-server itself, so the app unloads
  its own servers to free the ports and the GPU, and leaves FamilyLog's servers alone.
- otherwise ``RUN_PRELOAD`` (none/vision/llm/both) loads the models FamilyLog's section-3
  setup (``CONNECTION_TYPE=offline``, fixed ports) talks to directly.
- the child's environment gets ``CONNECTION_TYPE`` and ``OPENROUTER_URL`` as set in the
  app, ``LLAMA_VISION_PORT`` and ``LLAMA_LLM_PORT`` set to where the app's servers are, and
  the API address.

After the run (``finish``): ``AFTER_RUN`` keep / unload / restore what was loaded before; a
FamilyLog that manages its models gets the app's models back unless ``AFTER_RUN=unload``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.core.lifecycle.instance import LoadFailedError
from app.core.models.entry import LLM, VISION
from app.core.runs.deps import RunDeps
from app.core.servers.address import client_url
from app.core.servers.ports import wait_port_free

log = logging.getLogger(__name__)

PRELOADS: dict[str, tuple[str, ...]] = {
    "none": (),
    "vision": (VISION,),
    "llm": (LLM,),
    "both": (VISION, LLM),
}
Note = Callable[[str], None]
HOLDER = "familylog-run"


class PrepareError(RuntimeError):
    """The run cannot start; the message says what to fix."""


@dataclass
class Prepared:
    """What ``prepare`` did, for the run and for ``finish``."""

    env: dict[str, str]
    before: list[str] = field(default_factory=list)  # keys of the models loaded before
    familylog_logs: Path | None = None  # FamilyLog's own logs/ while it manages its models


class ModelPlacement:
    def __init__(self, deps: RunDeps, base_env: Mapping[str, str] | None = None) -> None:
        self.deps = deps
        self.lifecycle = deps.lifecycle
        self._base_env = base_env
        self.port_release_timeout = 10.0  # how long FamilyLog's own server may hold a port

    @property
    def settings(self):
        return self.deps.settings()

    def loaded_keys(self) -> list[str]:
        """The models the app has starting or ready now."""
        return [i.key for i in self.lifecycle.snapshot() if i.status.state.alive]

    async def prepare(self, note: Note) -> Prepared:
        s = self.settings
        before = self.loaded_keys()
        if s.FAMILYLOG_MANAGES_MODELS:
            if before:
                note(
                    f"FamilyLog manages its own models: unloading the app's models first: "
                    f"{', '.join(before)}"
                )
                await self.lifecycle.unload_all()
            logs = Path(s.FAMILYLOG_DIR).expanduser() / "logs"
            return Prepared(self.child_env(), before, logs)
        roles = PRELOADS[s.RUN_PRELOAD]
        for name in roles:
            await self._preload(name, note, beside=len(roles) > 1)
        return Prepared(self.child_env(), before)

    async def _preload(self, name: str, note: Note, *, beside: bool) -> None:
        s = self.settings
        entry = self.lifecycle.catalogue.role(name)
        problem = entry.problem()
        if problem:
            raise PrepareError(
                f"RUN_PRELOAD={s.RUN_PRELOAD} needs the {entry.title} model, but: {problem} "
                "Fix the model file in Settings or set RUN_PRELOAD to what FamilyLog needs."
            )
        ready = self.lifecycle.ready(entry)
        note_said_ready = ready is not None
        if ready is not None:
            note(f"{entry.title} model {entry.key} already loaded on port {ready.port}")
        else:
            note(f"Loading the {entry.title} model {entry.key}…")
        try:
            # FamilyLog calls this server directly: nothing may evict it until the run
            # ends; held as it is found ready, so no other load evicts it first
            ready = await self.lifecycle.ensure(entry, beside=beside, hold=HOLDER)
        except asyncio.CancelledError:
            # the run started it: stop it with the run, before the run reports
            await asyncio.shield(self.lifecycle.cancel_load(entry))
            raise
        except LoadFailedError as e:
            raise PrepareError(f"Loading the {entry.title} model for the run failed: {e}") from e
        if not note_said_ready:
            note(f"{entry.title} model ready on port {ready.port}")

    def port_for(self, name: str) -> int:
        """Where FamilyLog finds this model: the app's server for it, else its own port."""
        entry = self.lifecycle.catalogue.role(name)
        if not self.settings.FAMILYLOG_MANAGES_MODELS and entry.configured:
            inst = self.lifecycle.instance(entry)
            if inst is not None:
                return inst.port
        return entry.port or 0

    def child_env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ if self._base_env is None else self._base_env)
        env.pop("VIRTUAL_ENV", None)  # the app's venv is not FamilyLog's (uv would warn)
        env.setdefault("PYTHONUNBUFFERED", "1")  # so the log shows lines as they come
        env["CONNECTION_TYPE"] = s.CONNECTION_TYPE
        env["OPENROUTER_URL"] = s.OPENROUTER_URL
        env["LLAMA_VISION_PORT"] = str(self.port_for(VISION))
        env["LLAMA_LLM_PORT"] = str(self.port_for(LLM))
        for name, entry in self.lifecycle.catalogue.roles().items():  # keys the API answers to
            if entry.key:
                env[f"{name.upper()}_MODEL_ID"] = entry.key
        server = self.lifecycle.manager.server_path
        if Path(server).is_file():
            env["LLAMA_SERVER_PATH"] = server
        port = self.deps.api_port()
        if port:
            env["API_PORT"] = str(port)
            env["FAMILYLOG_TRAY_API_URL"] = client_url(s.API_HOST, port)
        env["FAMILYLOG_TRAY_RUN"] = "1"
        return env

    async def finish(self, prepared: Prepared | None, note: Note) -> list[str]:
        """Let go of the run's models and apply ``AFTER_RUN``; returns the problems met."""
        self.lifecycle.release(HOLDER)
        s = self.settings
        after = s.AFTER_RUN
        if prepared is None:
            return []
        if s.FAMILYLOG_MANAGES_MODELS and after != "unload":
            after = "restore"
        if after == "keep":
            return []
        if after == "unload":
            if self.loaded_keys():
                note("AFTER_RUN=unload: unloading the app's models")
            await self.lifecycle.unload_all()
            return []
        return await self._restore(prepared.before, note)

    async def _restore(self, before: list[str], note: Note) -> list[str]:
        problems: list[str] = []
        for key in self.loaded_keys():
            if key not in before:
                note(f"Restoring: unloading {key}")
                try:
                    await self.lifecycle.unload(key)
                except Exception as e:
                    problems.append(f"Unloading {key} failed: {e}")
        now = set(self.loaded_keys())
        for key in before:
            if key in now:
                continue
            note(f"Restoring: loading {key}")
            entry = self.lifecycle.catalogue.find(key)
            if entry is None:
                problems.append(f"Reloading {key}: it is no longer in the catalogue")
                continue
            if entry.port:  # FamilyLog's own server may still be letting go of the port
                await wait_port_free(entry.port, timeout=self.port_release_timeout)
            try:
                await self.lifecycle.ensure(entry, beside=len(before) > 1)
            except Exception as e:
                problems.append(f"Reloading {key}: {e}")
        for p in problems:
            log.warning("After the run: %s", p)
        return problems
