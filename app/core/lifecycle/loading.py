"""How a model is loaded: one load task per model however many ask; under the lifecycle's
lock ``planner.plan_load`` decides where (and across which RPC workers), room is made (busy
models waited for, never evicted; idle ones unloaded; GPU memory let settle), then its
server is started. ``cancel`` stops a load under way, its server too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.config import SettingsSource
from app.core.gpu.snapshot import GpuProbe
from app.core.lifecycle import planner
from app.core.lifecycle.instance import BusyError, Instance, LoadFailedError, config_differs
from app.core.lifecycle.model_state import ModelRecord, ModelRecords, ModelState
from app.core.lifecycle.settle import settle
from app.core.lifecycle.start_failures import StartFailures
from app.core.models.entry import ModelEntry
from app.core.models.launch_args import LoadConfig, launch_key, launch_kwargs, rpc_of, with_rpc
from app.core.notices import Level, Notice, NoticeBus
from app.core.presets.fields import ModelPreset
from app.core.presets.flags import Known, from_load_config
from app.core.presets.service import Presets
from app.core.presets.store import PresetError
from app.core.servers.launch import ServerExitedError
from app.core.servers.manager import LlamaServerManager
from app.core.servers.ports import PortInUseError
from app.core.servers.states import ServerState, ServerStatus
from app.platform.open_files import out_of_files, out_of_files_words

log = logging.getLogger(__name__)

_LOAD_ERRORS = (
    FileNotFoundError,
    PermissionError,
    PortInUseError,
    ServerExitedError,
    TimeoutError,
    RuntimeError,
    OSError,
)


def config_ok(st: ServerStatus, config: LoadConfig | None) -> bool:
    """The server on ``st`` runs with ``config`` (None: any)."""
    return not config_differs(st, config)


class Loader:
    """The lifecycle's loads. ``instances``: what runs now, as placement weighs it."""

    def __init__(
        self,
        manager: LlamaServerManager,
        records: ModelRecords,
        settings: SettingsSource,
        notices: NoticeBus,
        lock: asyncio.Lock,
        instances: Callable[[], list[Instance]],
        *,
        free_memory: planner.FreeMemory | None = None,
        gpu_probe: GpuProbe | None = None,
        presets: Presets | None = None,
        workers: planner.WorkerRoom | None = None,
    ) -> None:
        self.manager = manager
        self._presets = presets
        self.known: Known = None  # the options the binary took at the last load
        self._records = records
        self._settings = settings
        self._notices = notices
        self._lock = lock
        self._instances = instances
        self._free_memory = free_memory
        self._gpu_probe = gpu_probe
        self._workers = workers
        self.failures = StartFailures()  # crashed at start: back-off, no eviction for them

    async def ensure(
        self,
        entry: ModelEntry,
        config: LoadConfig | None,
        beside: bool,
        *,
        reserve: bool,
        holder: str | None = None,
    ) -> tuple[ServerStatus, bool]:
        """The ready server of ``entry``, loaded if needed (one load however many ask; an
        idle one with another ``config`` loaded again). With ``reserve`` a load started
        here counts one request on it before anyone can evict it (True: the caller owns it)."""
        rec = self._records.of(entry.file)
        while True:
            st = rec.process
            if rec.state is ModelState.READY and st is not None and config_ok(st, config):
                if holder is not None:
                    rec.holders.add(holder)  # in the same step as the look: never evicted
                return st, False
            task = rec.load
            if task is None or task.done():
                task = asyncio.create_task(
                    self._load(rec, entry, config, beside, reserve, holder),
                    name=f"load-{entry.key}",
                )
                self._started(rec, task)
                try:
                    return await _wait(entry, task), reserve
                except asyncio.CancelledError:
                    if reserve:  # nobody will use the reservation: give it back when done
                        task.add_done_callback(
                            lambda t: t.cancelled() or t.exception() or rec.leave()
                        )
                    raise
            await _wait(entry, task)

    async def cancel(self, rec: ModelRecord) -> bool:
        """Stop the load of ``rec`` under way and wait until its server is stopped."""
        task = rec.load
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.wait({task})  # its end, not its error (our own cancel still ends us)
        return True

    def _started(self, rec: ModelRecord, task: asyncio.Task[ServerStatus]) -> None:
        rec.load = task
        if rec.state in (ModelState.STOPPED, ModelState.FAILED):
            rec.become(ModelState.WAITING, "a load was asked")
        task.add_done_callback(lambda t: self._done(rec, t))

    def _done(self, rec: ModelRecord, task: asyncio.Task[ServerStatus]) -> None:
        if rec.load is task:
            rec.load = None
            rec.load_ended(self.manager.status(rec.port) if rec.port is not None else None)
        if not task.cancelled():
            task.exception()  # retrieved: a load nobody waits for any more is no error

    async def _load(
        self,
        rec: ModelRecord,
        entry: ModelEntry,
        config: LoadConfig | None,
        beside: bool,
        reserve: bool,
        holder: str | None = None,
    ) -> ServerStatus:
        problem = entry.problem()
        if problem:
            self._tell_failed(entry, problem, None)
            raise LoadFailedError(f"Cannot load {entry.key}: {problem}")
        preset, known = await self._load_settings(entry, config)
        setup = launch_key(launch_kwargs(entry, self._settings(), preset=preset, known=known))
        blocked = self.failures.blocked(entry, setup)
        if blocked:  # said when it crashed; every request meanwhile gets the reason at once
            raise LoadFailedError(f"Cannot load {entry.key} now: {blocked}")
        async with self._lock:
            st = await self._load_locked(rec, entry, config, beside, preset, known)
            # counted (or held) before the lock goes: no other load can evict it first
            if reserve:
                rec.enter()
            if holder is not None:
                rec.holders.add(holder)
        return st

    async def _load_settings(
        self, entry: ModelEntry, config: LoadConfig | None
    ) -> tuple[ModelPreset, Known]:
        """What the load uses: the model's preset (``[*]`` and its section in
        ``models.ini``) with the client's config over it, its draft model checked; and the
        options the binary takes. Refused (``LoadFailedError``, the user told) before
        anything starts. Off the loop: GGUF headers and ``--help`` are read once per file."""
        loop = asyncio.get_running_loop()
        preset = from_load_config(config)
        if self._presets is not None:
            try:
                preset = await loop.run_in_executor(None, self._presets.for_load, entry, preset)
            except PresetError as e:  # a line of models.ini, a draft model that cannot draft
                self._tell_failed(entry, str(e), None)
                raise LoadFailedError(f"Cannot load {entry.key}: {e}") from None
        self.known = await loop.run_in_executor(None, self.manager.known_options)
        return preset, self.known

    async def _load_locked(
        self,
        rec: ModelRecord,
        entry: ModelEntry,
        config: LoadConfig | None,
        beside: bool,
        preset: ModelPreset,
        known: Known,
    ) -> ServerStatus:
        s = self._settings()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.EVICT_WAIT_SECONDS
        while True:
            own = rec.process
            if own is not None and own.state is not ServerState.READY:
                # the supervisor is restarting it, or a stop is under way: let that end
                await self.manager.settled(own.port)
                continue
            if own is not None and config_ok(own, config):
                return own
            kw = launch_kwargs(entry, s, preset=preset, known=known)  # the config is in it
            named = rpc_of(kw["extra_args"])
            # The free memory (and the workers' room) first: the look may take a while
            # (nvidia-smi, a worker's answer), and requests come and go meanwhile. From here
            # to the claim (``_start`` marks what it evicts as draining) nothing awaits, so
            # what is weighed as idle is idle.
            free = await planner.measure_free(s, self._free_memory)
            room = await planner.worker_room(s, self._workers, named)
            own = rec.process
            if own is not None and (own.state is not ServerState.READY or config_ok(own, config)):
                continue  # it changed while the memory was looked at: look again
            running = planner.running(self._instances(), s.LLAMA_CTX_SIZE)
            mine = next((r for r in running if own is not None and r.port == own.port), None)
            plan = planner.plan_load(
                entry,
                kw["ctx_size"],
                settings=preset,
                beside=beside,
                own=mine,
                others=[r for r in running if r is not mine],
                free=free,
                policy=planner.policy(s),
                workers=room,
                named=named,
            )
            if plan.refused:
                self._tell_failed(entry, plan.refused, None)
                raise LoadFailedError(f"Cannot load {entry.key} now: {plan.refused}")
            if not plan.wait:
                st = await self._start(entry, kw, plan)
                if config is not None and config != LoadConfig():
                    rec.config = config
                return st
            left = deadline - loop.time()
            log.info("Loading %s waits: %s", entry.key, plan.why_wait)
            busy = [r for p in plan.wait if (r := self._records.on_port(p)) is not None]
            with self._records.draining(busy, f"{entry.key} waits to load"):
                idle = left > 0 and await self._records.wait_idle(busy, left)
            if not idle:
                self._tell_failed(entry, f"busy: {plan.why_wait}", None)
                raise BusyError(
                    f"Cannot load {entry.key} now: busy: {plan.why_wait} "
                    f"(waited {s.EVICT_WAIT_SECONDS:g} s, EVICT_WAIT_SECONDS)"
                )

    async def _start(self, entry: ModelEntry, kw: dict, plan: planner.Plan) -> ServerStatus:
        s = self._settings()
        port = plan.port
        log_name = None  # a port of its own keeps the port's log
        if port is None:
            reserved = {s.LLAMA_PORT, s.LLAMA_VISION_PORT, s.LLAMA_LLM_PORT, s.API_PORT}
            used = {p for p, st in self.manager.statuses().items() if st.state.alive}
            port = planner.free_port(reserved | used)
            log_name = entry.key  # a free port changes from load to load: log by the model
        evict = sorted(plan.evict)
        log.info(
            "Loading %s on port %d (%s)%s",
            entry.key,
            port,
            plan.reason,
            f"; unloading ports {evict} first" if evict else "",
        )
        crashed = self.failures.recent(entry, launch_key(kw))
        if evict and crashed:
            raise LoadFailedError(
                f"Cannot load {entry.key}: it crashed while starting last time, so no running "
                f"model is unloaded to make room for it (ports {evict}). Unload one yourself "
                f"to try it, or fix its file. Last time: {crashed}"
            )
        evicted = [r for p in evict if (r := self._records.on_port(p)) is not None]
        # the claim: from now on no request is admitted to what is evicted
        with self._records.draining(evicted, f"unloaded for {entry.key}"):
            flying = [r for r in evicted if r.in_flight]
            if flying:  # cannot happen (the plan saw them idle, no await since): never stop them
                log.error("Evicting %s with requests in flight; waiting for them", flying)
                if not await self._records.wait_idle(flying, s.EVICT_WAIT_SECONDS, holds=False):
                    raise BusyError(f"Cannot load {entry.key} now: {flying} still serve requests")
            try:
                pids = {self.manager.status(p).pid for p in evict} - {None}
                for p in evict:
                    await self.manager.unload_model(p)
                await self._settle(pids)
                kw = {**kw, "extra_args": with_rpc(kw["extra_args"], plan.rpc)}
                st = await self.manager.load_model(entry.path, port=port, log_name=log_name, **kw)
            except _LOAD_ERRORS as e:
                why = out_of_files_words() if out_of_files(e) else str(e)
                told = why
                if isinstance(e, ServerExitedError):  # crashed while starting: back off
                    backoff = self.failures.crashed(entry, launch_key(kw), why)
                    told += f"\nNot tried again for {backoff:g} s (or until its file changes)."
                self._tell_failed(entry, told, self.manager.log_path(port))
                raise LoadFailedError(f"Cannot load {entry.key}: {why}") from e
        self.failures.started(entry)
        return st

    async def _settle(self, pids: set) -> None:
        """On a GPU, wait until the unloaded servers' memory is released (bounded)."""
        s = self._settings()
        if not pids or self._gpu_probe is None or s.LLAMA_GPU_LAYERS == 0:
            return
        took = await settle(self._gpu_probe, pids, s.VRAM_SETTLE_SECONDS)
        if took is not None and took > 0:
            log.info("GPU memory of PIDs %s released after %.3f s", sorted(pids), took)

    def _tell_failed(self, entry: ModelEntry, why: str, log_path) -> None:
        title = f"Loading {entry.title} failed"
        if entry.title != entry.key:
            title = f"Loading {entry.title} ({entry.key}) failed"
        self._notices.emit(Notice(Level.ERROR, title, why, log_path))


async def _wait(entry: ModelEntry, task: asyncio.Task[ServerStatus]) -> ServerStatus:
    """The load's result; a load cancelled by someone else (Cancel, an unload) is a
    ``LoadFailedError`` for its waiters, not a cancellation of their own task."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if task.cancelled() and not (me is not None and me.cancelling()):
            raise LoadFailedError(
                f"Loading {entry.key} was cancelled (Cancel or unload) before it was ready"
            ) from None
        raise
