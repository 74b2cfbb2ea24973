"""The one lifecycle every model goes through: the tray, the models window, the API, runs,
settings apply, idle unload and the supervisor ask it, and nothing else loads a model.

``ensure`` makes a model ready (``loading``: placed by ``planner``, one load however many
ask, an idle instance with another config reloaded); ``holding`` counts a request on the
instance, so eviction waits for it; ``hold``/``release`` pin instances for a FamilyLog run;
``unload`` stops one (``unloading``). An instance is a process of the manager; its model's
state is one ``ModelRecord`` (``model_state``), kept by the file it runs, so a model can
never run twice under two names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from app.config import SettingsSource
from app.core.events import Listeners
from app.core.gpu.snapshot import GpuProbe
from app.core.lifecycle import planner
from app.core.lifecycle.instance import (
    BusyError,
    Instance,
    InstanceEvent,
    ModelNotLoadedError,
)
from app.core.lifecycle.instance_view import InstanceViews
from app.core.lifecycle.loading import Loader
from app.core.lifecycle.model_state import ModelRecord, ModelRecords, ModelState
from app.core.lifecycle.unloading import Unloader
from app.core.models.catalogue import Catalogue, UnknownModelError
from app.core.models.entry import ModelEntry
from app.core.models.launch_args import LoadConfig
from app.core.notices import NoticeBus
from app.core.presets.service import Presets
from app.core.servers.manager import LlamaServerManager
from app.core.servers.states import ServerState, ServerStatus, StateEvent

log = logging.getLogger(__name__)


class ModelLifecycle:
    def __init__(
        self,
        manager: LlamaServerManager,
        catalogue: Catalogue,
        settings: SettingsSource,
        notices: NoticeBus,
        *,
        free_memory: planner.FreeMemory | None = None,
        gpu_probe: GpuProbe | None = None,
        workers: planner.WorkerRoom | None = None,
        clock: Callable[[], float] = time.time,
        presets: Presets | None = None,
    ) -> None:
        self.manager = manager
        self.presets = presets
        self.catalogue = catalogue
        self._settings = settings
        self._records = ModelRecords(clock)
        self._lock = asyncio.Lock()  # one load, unload or restart decides at a time
        self._loader = Loader(
            manager,
            self._records,
            settings,
            notices,
            self._lock,
            self.snapshot,
            free_memory=free_memory,
            gpu_probe=gpu_probe,
            presets=presets,
            workers=workers,
        )
        self._unloader = Unloader(manager, self._records, settings, self._lock)
        self._views = InstanceViews(
            catalogue, self._records, settings, presets, lambda: self._loader.known
        )
        self._ttl_watchers: Listeners[[]] = Listeners("TTL changes")  # the idle unloader
        self._listeners: Listeners[InstanceEvent] = Listeners("model states")
        # a server a client found silent (the API's read timeout): the supervisor checks it
        self._suspects: Listeners[int] = Listeners("suspect servers")
        # a server declared hung: the API answers its requests in flight with the reason
        self._faults: Listeners[tuple[int, str]] = Listeners("hung servers")
        self._unsubscribe = manager.subscribe(self._on_server)
        manager.activity = self._activity  # said in the log of a stop that needed SIGKILL

    # ── Reading ────────────────────────────────────────────────────────────────
    def entry(self, model: str | ModelEntry) -> ModelEntry:
        """The catalogue entry for a key or alias (``UnknownModelError`` if none)."""
        return model if isinstance(model, ModelEntry) else self.catalogue.resolve(model)

    def snapshot(self) -> list[Instance]:
        """Every model process the app has (starting, ready, stopping or failed)."""
        return [
            self._views.of(st)
            for st in self.manager.statuses().values()
            if st.spec is not None and st.state is not ServerState.STOPPED
        ]

    def _record(self, model: str | ModelEntry) -> ModelRecord | None:
        try:
            return self._records.get(self.entry(model).file)
        except UnknownModelError:
            return None

    def instance(self, model: str | ModelEntry) -> Instance | None:
        """The live instance of a model (starting, ready or stopping), if any."""
        rec = self._record(model)
        st = rec.process if rec is not None else None
        return self._views.of(st) if st is not None else None

    def ready(self, model: str | ModelEntry) -> Instance | None:
        inst = self.instance(model)
        return inst if inst is not None and inst.ready else None

    def loaded(self) -> list[Instance]:
        """The ready instances."""
        return [i for i in self.snapshot() if i.ready]

    def state(self, model: str | ModelEntry) -> ModelState:
        """The model's state in the lifecycle (``ModelState.STOPPED`` when never loaded)."""
        rec = self._record(model)
        return rec.state if rec is not None else ModelState.STOPPED

    def _activity(self, port: int) -> str:
        """What the model on ``port`` is doing, in words ("serving 2 requests", "held by a
        FamilyLog run"); empty when idle."""
        rec = self._records.on_port(port)
        if rec is None:
            return ""
        words = []
        if rec.in_flight:
            words.append(f"serving {rec.in_flight} request{'s' if rec.in_flight != 1 else ''}")
        if rec.holders:
            words.append("held by " + ", ".join(sorted(rec.holders)))
        return " and ".join(words)

    def in_flight(self, port: int) -> int:
        rec = self._records.on_port(port)
        return rec.in_flight if rec else 0

    def is_draining(self, port: int) -> bool:
        """True while a load or unload waits for the requests on ``port`` to finish."""
        rec = self._records.on_port(port)
        return rec is not None and rec.state is ModelState.DRAINING

    def is_busy(self, model: str | ModelEntry) -> bool:
        """True while the model loads or unloads (the tray greys its actions)."""
        rec = self._record(model)
        if rec is None:
            return False
        if rec.load is not None or rec.state is ModelState.DRAINING:
            return True
        st = rec.process
        return st is not None and self.manager.is_busy(st.port)

    def last_used(self, model: str | ModelEntry) -> float:
        """When the model was last used (loaded or asked), also after it was unloaded; 0 if
        never since the app started (the tray lists other models by it)."""
        rec = self._record(model)
        return rec.last_used if rec else 0.0

    def start_problem(self, model: str | ModelEntry) -> str | None:
        """Why the model is not started now: it crashed while starting and its back-off
        runs (the reason, and when it is tried again); None when it can be."""
        return self._loader.failures.blocked(self.entry(model))

    def file_changes(self) -> dict[str, str]:
        """``{key: file note}`` of the running models whose file moved or changed."""
        return {i.key: i.file_note for i in self.snapshot() if i.file_note and i.state.alive}

    def subscribe(self, cb: Callable[[InstanceEvent], object]) -> Callable[[], None]:
        """``cb(InstanceEvent)`` on every state change of a model process."""
        return self._listeners.add(cb)

    def watch_ttl(self, cb: Callable[[], object]) -> Callable[[], None]:
        """``cb()`` whenever an instance's TTL is set."""
        return self._ttl_watchers.add(cb)

    def _on_server(self, event: StateEvent) -> None:
        self._records.follow(event)
        if event.status.spec is not None and self._listeners:
            inst = self._views.of(event.status)
            self._listeners.emit(InstanceEvent(inst.key, event.old, event.new, inst))

    # ── Loading ────────────────────────────────────────────────────────────────
    async def ensure(
        self,
        model: str | ModelEntry,
        config: LoadConfig | None = None,
        *,
        beside: bool = False,
        hold: str | None = None,
    ) -> Instance:
        """The ready instance of ``model``, loading it if needed (one load however many
        ask). An idle instance with another ``config`` is loaded again; ``beside``: a run
        needs it together with the others, so nothing is evicted for it; ``hold``: pin it
        for that holder (a run) as it becomes ready, so no other load evicts it first."""
        st, _ = await self._loader.ensure(
            self.entry(model), config, beside, reserve=False, holder=hold
        )
        return self._views.of(st)

    async def cancel_load(self, model: str | ModelEntry) -> bool:
        """Stop a load under way and wait until its server is stopped; True if there was one."""
        rec = self._records.get(self.entry(model).file)
        return rec is not None and await self._loader.cancel(rec)

    # ── Using ──────────────────────────────────────────────────────────────────
    @contextlib.asynccontextmanager
    async def holding(
        self, model: str | ModelEntry, *, jit: bool = True
    ) -> AsyncIterator[Instance]:
        """Count a request on the ready instance of ``model`` (loading it first when ``jit``);
        eviction waits until the block ends."""
        entry = self.entry(model)
        rec = self._records.of(entry.file)
        inst = await self._acquire(rec, entry, jit)
        try:
            yield inst
        finally:
            rec.leave()

    async def _acquire(self, rec: ModelRecord, entry: ModelEntry, jit: bool) -> Instance:
        for _ in range(8):
            st = rec.process
            if rec.state is ModelState.READY and st is not None:
                rec.enter()
                return self._views.view(st, entry.key, entry, rec)
            if not jit:
                raise ModelNotLoadedError(
                    f"Model {entry.key} is not loaded and JIT loading is off "
                    "(JIT_LOAD=false). Load it first: POST /api/v1/models/load"
                )
            if rec.state is ModelState.DRAINING:
                # Ready, but a load is unloading it: let that load finish, then load it again.
                async with self._lock:
                    pass
                continue
            if rec.state is ModelState.NOT_RESPONDING:
                # Its server missed a health check: wait until it answers again, or is
                # declared hung and restarted (bounded by the hung check itself).
                s = self._settings()
                await self._records.wait_change(
                    lambda: rec.state is not ModelState.NOT_RESPONDING,
                    s.HUNG_PROBE_SECONDS * 2 + s.LLAMA_READY_TIMEOUT,
                )
                continue
            st, reserved = await self._loader.ensure(entry, None, False, reserve=True)
            if reserved:
                return self._views.of(st)  # counted on it before anyone could evict it
        raise BusyError(
            f"{entry.key} was unloaded again by other requests before it could be used; "
            "retry, or set RUN_MODE=parallel if the models fit in memory together"
        )

    def hold(self, inst: Instance, holder: str) -> None:
        """Pin ``inst`` for ``holder`` (a run): placement never evicts it until ``release``."""
        spec = inst.status.spec
        assert spec is not None
        self._records.of(spec.file).holders.add(holder)

    def release(self, holder: str) -> None:
        self._records.release(holder)

    def touch(self, port: int) -> None:
        """Count the model on ``port`` as used now (its idle unload starts over)."""
        rec = self._records.on_port(port)
        if rec is not None:
            rec.touch()

    def set_ttl(self, port: int, seconds: float | None) -> None:
        """Unload the instance on ``port`` after ``seconds`` idle (LM Studio's ``ttl``);
        None: the default (``IDLE_UNLOAD_MINUTES``). Kept until the process stops."""
        rec = self._records.on_port(port)
        if rec is not None and rec.state.alive:
            rec.ttl = None if seconds is None else float(seconds)
        self._ttl_watchers.emit()

    # ── Unloading ──────────────────────────────────────────────────────────────
    async def unload(self, model: str | ModelEntry) -> list[int]:
        """Unload ``model`` after its requests finish (bounded); returns the ports freed. A
        load of it still under way is cancelled (its server stopped)."""
        entry = self.entry(model)
        await self.cancel_load(entry)
        return await self._unloader.unload(entry.file)

    async def unload_all(self) -> list[int]:
        return await self._unloader.unload_all()

    async def unload_port(self, port: int, *, only_if_idle: bool = False) -> bool:
        """Unload whatever runs on ``port`` (the idle unloader, the models window's row)."""
        return await self._unloader.unload_port(port, only_if_idle=only_if_idle)

    # ── Health (the supervisor and the API) ────────────────────────────────────
    def _live_rec(self, port: int, pid: int | None) -> ModelRecord | None:
        rec = self._records.on_port(port)
        st = rec.process if rec is not None else None
        return rec if st is not None and st.pid == pid else None

    def not_responding(self, port: int, pid: int | None, why: str) -> bool:
        """The server ``pid`` on ``port`` missed its health check: its model takes no new
        requests until it answers again or is declared hung. False if it is not ready."""
        rec = self._live_rec(port, pid)
        if rec is None or rec.state is not ModelState.READY:
            return False
        rec.become(ModelState.NOT_RESPONDING, why)
        self._emit(rec)
        return True

    def responding(self, port: int, pid: int | None) -> None:
        """The server ``pid`` on ``port`` answers its health check again."""
        rec = self._live_rec(port, pid)
        if rec is not None and rec.state is ModelState.NOT_RESPONDING:
            rec.become(ModelState.READY, "it answers its health check again")
            self._emit(rec)

    def _emit(self, rec: ModelRecord) -> None:
        st = rec.process
        if st is not None and self._listeners:
            inst = self._views.of(st)
            self._listeners.emit(InstanceEvent(inst.key, st.state, st.state, inst))

    def suspect(self, port: int) -> None:
        """A client waited too long for the server on ``port``: have it checked now."""
        self._suspects.emit(port)

    def watch_suspects(self, cb: Callable[[int], object]) -> Callable[[], None]:
        return self._suspects.add(cb)

    def declare_hung(self, port: int, reason: str) -> None:
        """The server on ``port`` is hung: its requests in flight are answered with
        ``reason`` now (it is about to be restarted or stopped)."""
        self._faults.emit((port, reason))

    def watch_faults(self, cb: Callable[[tuple[int, str]], object]) -> Callable[[], None]:
        return self._faults.add(cb)

    # ── Recovery (the supervisor) ──────────────────────────────────────────────
    def describe(self, st: ServerStatus) -> str:
        """``"<model> on port N"`` for a notice."""
        return self._views.describe(st)

    async def restart(
        self, port: int, only_if: Callable[[ServerStatus], bool]
    ) -> ServerStatus | None:
        """Start the server on ``port`` again with the same arguments, if ``only_if`` still
        holds (None when the port changed meanwhile)."""
        async with self._lock:
            return await self.manager.restart(
                port, only_if=only_if, timeout=self._settings().LLAMA_READY_TIMEOUT
            )

    async def fail(self, port: int, error: str, only_if: Callable[[ServerStatus], bool]) -> bool:
        """Stop a hung server and mark it failed (it must not look ready)."""
        return await self.manager.fail(port, error, only_if=only_if)

    def close(self) -> None:
        self._unsubscribe()
        for rec in self._records.all():
            if rec.load is not None:
                rec.load.cancel()
