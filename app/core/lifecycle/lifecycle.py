"""The one lifecycle every model goes through: the tray, the models window, the API, runs,
settings apply, idle unload and the supervisor ask it, and nothing else loads a model.

``ensure`` makes a model ready (placed by ``placement.place``, one load however many ask,
an idle instance with another config reloaded); ``holding`` counts a request on the
instance, so eviction waits for it; ``hold``/``release`` pin instances for a FamilyLog run;
``unload`` stops one. An instance is a process of the manager; its key is the catalogue
entry whose file it runs, so a model can never run twice under two names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable

from app.config import Settings, SettingsSource
from app.core.events import Listeners
from app.core.gpu.snapshot import GpuProbe
from app.core.lifecycle.instance import (
    BusyError,
    Instance,
    InstanceEvent,
    LoadFailedError,
    ModelNotLoadedError,
    config_differs,
)
from app.core.lifecycle.placement import Free, Policy, Running, Target, estimate_need, place
from app.core.lifecycle.settle import settle
from app.core.lifecycle.usage import Usage
from app.core.models.catalogue import Catalogue, UnknownModelError
from app.core.models.entry import ModelEntry
from app.core.models.launch_args import LoadConfig, launch_key, launch_kwargs
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.launch import ServerExitedError
from app.core.servers.manager import LlamaServerManager
from app.core.servers.ports import PortInUseError
from app.core.servers.states import ServerState, ServerStatus, StateEvent

log = logging.getLogger(__name__)

FreeMemory = Callable[[], Free]
_LOAD_ERRORS = (
    FileNotFoundError,
    PermissionError,
    PortInUseError,
    ServerExitedError,
    TimeoutError,
    RuntimeError,
    OSError,
)

_GOING = (ServerState.STOPPING, ServerState.STOPPED, ServerState.FAILED)


def _free_port(avoid: set[int]) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise RuntimeError("No free port on 127.0.0.1")


class ModelLifecycle:
    def __init__(
        self,
        manager: LlamaServerManager,
        catalogue: Catalogue,
        settings: SettingsSource,
        notices: NoticeBus,
        *,
        free_memory: FreeMemory | None = None,
        gpu_probe: GpuProbe | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.catalogue = catalogue
        self._settings = settings
        self._notices = notices
        self._free_memory = free_memory
        self._gpu_probe = gpu_probe
        self.usage = Usage(clock)
        self._lock = asyncio.Lock()
        self._loads: dict[tuple[str, str | None], asyncio.Task[Instance]] = {}
        self._draining: set[int] = set()
        self._configs: dict[int, LoadConfig] = {}  # the config a client asked for, per port
        self._ttls: dict[int, float] = {}  # a client's idle unload ("ttl") per port
        self._ttl_watchers: Listeners[[]] = Listeners("TTL changes")  # the idle unloader
        self._listeners: Listeners[InstanceEvent] = Listeners("model states")
        self._used_at: dict[tuple[str, str | None], float] = {}  # by file, kept after unload
        self._unsubscribe = manager.subscribe(self._on_state)

    # ── Reading ────────────────────────────────────────────────────────────────
    def entry(self, model: str | ModelEntry) -> ModelEntry:
        """The catalogue entry for a key or alias (``UnknownModelError`` if none)."""
        return model if isinstance(model, ModelEntry) else self.catalogue.resolve(model)

    def _key_for(self, st: ServerStatus) -> tuple[str, ModelEntry | None]:
        spec = st.spec
        assert spec is not None
        entry = self.catalogue.by_file(spec.model_path, spec.mmproj)
        return (entry.key if entry else st.model_name), entry

    def _instance(self, st: ServerStatus) -> Instance:
        key, entry = self._key_for(st)
        return Instance(
            key=key,
            entry=entry,
            status=st,
            in_flight=self.usage.in_flight(st.port),
            held_by=self.usage.holders(st.port),
            last_used=max(self.usage.last_used(st.port), st.ready_at or 0.0),
            stale=self._stale(st, entry),
            ttl=self._ttls.get(st.port),
            requests=self.usage.served(st.port),
        )

    def snapshot(self) -> list[Instance]:
        """Every model process the app has (starting, ready, stopping or failed)."""
        return [
            self._instance(st)
            for st in self.manager.statuses().values()
            if st.spec is not None and st.state is not ServerState.STOPPED
        ]

    def _alive_for(self, entry: ModelEntry) -> ServerStatus | None:
        for st in self.manager.statuses().values():
            spec = st.spec
            if (
                spec is not None
                and st.state.alive
                and (spec.model_path, spec.mmproj or None) == entry.file
            ):
                return st
        return None

    def instance(self, model: str | ModelEntry) -> Instance | None:
        """The live instance of a model (starting, ready or stopping), if any."""
        try:
            entry = self.entry(model)
        except UnknownModelError:
            return None
        st = self._alive_for(entry)
        return self._instance(st) if st is not None else None

    def ready(self, model: str | ModelEntry) -> Instance | None:
        inst = self.instance(model)
        return inst if inst is not None and inst.ready else None

    def loaded(self) -> list[Instance]:
        """The ready instances."""
        return [i for i in self.snapshot() if i.ready]

    def in_flight(self, port: int) -> int:
        return self.usage.in_flight(port)

    def is_draining(self, port: int) -> bool:
        """True while a load or unload waits for the requests on ``port`` to finish."""
        return port in self._draining

    def is_busy(self, model: str | ModelEntry) -> bool:
        """True while the model loads or unloads (the tray greys its actions)."""
        try:
            entry = self.entry(model)
        except UnknownModelError:
            return False
        if entry.file in self._loads:
            return True
        st = self._alive_for(entry)
        return st is not None and (st.port in self._draining or self.manager.is_busy(st.port))

    def _stale(self, st: ServerStatus, entry: ModelEntry | None) -> str | None:
        if entry is None:
            return "its file is no longer in the catalogue; unload it when you no longer need it"
        assert st.spec is not None
        spec = st.spec
        wanted = launch_kwargs(entry, self._settings(), self._configs.get(st.port))
        have = (spec.n_gpu_layers, spec.ctx_size, spec.mmproj or None, spec.extra_args)
        if have != launch_key(wanted):
            return "runs with the old settings: restart to apply"
        return None

    def subscribe(self, cb: Callable[[InstanceEvent], object]) -> Callable[[], None]:
        """``cb(InstanceEvent)`` on every state change of a model process."""
        return self._listeners.add(cb)

    def last_used(self, model: str | ModelEntry) -> float:
        """When the model was last used (loaded or asked), also after it was unloaded; 0 if
        never since the app started (the tray lists other models by it)."""
        try:
            entry = self.entry(model)
        except UnknownModelError:
            return 0.0
        st = self._alive_for(entry)
        if st is not None:
            return self._instance(st).last_used
        return self._used_at.get(entry.file, 0.0)

    def _on_state(self, event: StateEvent) -> None:
        spec = event.status.spec
        if spec is not None and event.new in _GOING:  # remember its last use for the tray
            file = (spec.model_path, spec.mmproj or None)
            used = max(self.usage.last_used(event.port), event.status.ready_at or 0.0)
            if used > self._used_at.get(file, 0.0):
                self._used_at[file] = used
        if event.new in (ServerState.STOPPED, ServerState.FAILED):
            self.usage.forget(event.port)
        if event.new is ServerState.STOPPED:
            self._configs.pop(event.port, None)
            self._ttls.pop(event.port, None)
        if event.status.spec is None or not self._listeners:
            return
        inst = self._instance(event.status)
        self._listeners.emit(InstanceEvent(inst.key, event.old, event.new, inst))

    # ── Loading ────────────────────────────────────────────────────────────────
    async def ensure(
        self,
        model: str | ModelEntry,
        config: LoadConfig | None = None,
        *,
        beside: bool = False,
    ) -> Instance:
        """The ready instance of ``model``, loading it if needed (one load however many
        ask). An idle instance with another ``config`` is loaded again; ``beside``: a run
        needs it together with the others, so nothing is evicted for it."""
        inst, _ = await self._ensure(self.entry(model), config, beside, reserve=False)
        return inst

    async def _ensure(
        self, entry: ModelEntry, config: LoadConfig | None, beside: bool, *, reserve: bool
    ) -> tuple[Instance, bool]:
        """``ensure``; with ``reserve`` a load started here counts one request on the new
        instance before anyone else can evict it (returned True: the caller owns it)."""
        while True:
            st = self._alive_for(entry)
            if (
                st is not None
                and st.state is ServerState.READY
                and st.port not in self._draining
                and self._config_ok(st, config)
            ):
                return self._instance(st), False
            task = self._loads.get(entry.file)
            if task is None:
                task = asyncio.create_task(
                    self._load(entry, config, beside, reserve), name=f"load-{entry.key}"
                )
                self._loads[entry.file] = task
                task.add_done_callback(lambda t, f=entry.file: self._load_done(f, t))
                try:
                    return await self._wait_load(entry, task), reserve
                except asyncio.CancelledError:
                    if reserve:  # nobody will use the reservation: give it back when done
                        task.add_done_callback(self._drop_reservation)
                    raise
            await self._wait_load(entry, task)

    @staticmethod
    async def _wait_load(entry: ModelEntry, task: asyncio.Task[Instance]) -> Instance:
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

    def _drop_reservation(self, task: asyncio.Task[Instance]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.usage.leave(task.result().port)

    @staticmethod
    def _config_ok(st: ServerStatus, config: LoadConfig | None) -> bool:
        return not config_differs(st, config)

    def set_ttl(self, port: int, seconds: float | None) -> None:
        """Unload the instance on ``port`` after ``seconds`` idle (LM Studio's ``ttl``);
        None: the default (``IDLE_UNLOAD_MINUTES``). Kept until the process stops."""
        if seconds is None:
            self._ttls.pop(port, None)
        else:
            self._ttls[port] = float(seconds)
        self._ttl_watchers.emit()

    def watch_ttl(self, cb: Callable[[], None]) -> Callable[[], None]:
        """``cb()`` whenever an instance's TTL is set."""
        return self._ttl_watchers.add(cb)

    def _load_done(self, file: tuple[str, str | None], task: asyncio.Task[Instance]) -> None:
        if self._loads.get(file) is task:
            del self._loads[file]
        if not task.cancelled():
            task.exception()  # retrieved: a load nobody waits for any more is no error

    def _policy(self, s: Settings) -> Policy:
        return Policy(mode=s.RUN_MODE, llama_port=s.LLAMA_PORT, max_loaded=s.MAX_LOADED_MODELS)

    def _running(self, exclude: int | None) -> list[Running]:
        ctx_default = self._settings().LLAMA_CTX_SIZE
        out = []
        for inst in self.snapshot():
            if not inst.status.state.alive or inst.port == exclude:
                continue
            spec = inst.status.spec
            need = (
                estimate_need(inst.entry, spec.ctx_size if spec else ctx_default)
                if inst.entry
                else 0
            )
            out.append(
                Running(
                    key=inst.key,
                    port=inst.port,
                    need=need,
                    in_flight=inst.in_flight,
                    held=bool(inst.held_by),
                    last_used=inst.last_used,
                )
            )
        return out

    async def _measure_free(self, s: Settings) -> Free | None:
        if s.RUN_MODE != "auto" or self._free_memory is None:
            return None
        # a GPU probe can block (nvidia-smi): off the loop
        return await asyncio.get_running_loop().run_in_executor(None, self._free_memory)

    async def _load(
        self, entry: ModelEntry, config: LoadConfig | None, beside: bool, reserve: bool = False
    ) -> Instance:
        inst = await self._load_locked(entry, config, beside)
        if reserve:
            self.usage.enter(inst.port)
        return inst

    async def _load_locked(
        self, entry: ModelEntry, config: LoadConfig | None, beside: bool
    ) -> Instance:
        problem = entry.problem()
        if problem:
            self._tell_failed(entry, problem, None)
            raise LoadFailedError(f"Cannot load {entry.key}: {problem}")
        s = self._settings()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.EVICT_WAIT_SECONDS
        async with self._lock:
            while True:
                own = self._alive_for(entry)
                if own is not None and own.state is not ServerState.READY:
                    # the supervisor is restarting it, or a stop is under way: let that end
                    await self.manager.settled(own.port)
                    continue
                if own is not None and self._config_ok(own, config):
                    return self._instance(own)
                kw = launch_kwargs(entry, s, config)
                target = Target(
                    key=entry.key,
                    need=estimate_need(entry, kw["ctx_size"]),
                    port=own.port if own is not None else entry.port,
                    beside=beside,
                )
                running = self._running(exclude=own.port if own is not None else None)
                decision = place(target, running, await self._measure_free(s), self._policy(s))
                by_key = {r.key: r for r in running}
                evict_ports = {by_key[k].port for k in decision.evict}
                if own is not None:
                    evict_ports.add(own.port)  # loaded with another config: load it again
                wait_ports = {by_key[k].port for k in decision.wait_for}
                if own is not None and self.usage.busy(own.port):
                    wait_ports.add(own.port)
                if wait_ports:
                    left = deadline - loop.time()
                    why = "; ".join(decision.busy) or f"{entry.key} is in use"
                    log.info("Loading %s waits: %s", entry.key, why)
                    self._draining |= wait_ports
                    try:
                        idle = left > 0 and await self.usage.wait_idle(wait_ports, left)
                    finally:
                        self._draining -= wait_ports
                    if not idle:
                        self._tell_failed(entry, f"busy: {why}", None)
                        raise BusyError(
                            f"Cannot load {entry.key} now: busy: {why} "
                            f"(waited {s.EVICT_WAIT_SECONDS:g} s, EVICT_WAIT_SECONDS)"
                        )
                    continue
                inst = await self._start(entry, kw, decision.port, evict_ports, decision.reason)
                if config is not None and config != LoadConfig():
                    self._configs[inst.port] = config
                return self._instance(inst.status)

    async def _start(
        self,
        entry: ModelEntry,
        kw: dict,
        port: int | None,
        evict: set[int],
        reason: str,
    ) -> Instance:
        s = self._settings()
        if port is None:
            reserved = {s.LLAMA_PORT, s.LLAMA_VISION_PORT, s.LLAMA_LLM_PORT, s.API_PORT}
            used = {p for p, st in self.manager.statuses().items() if st.state.alive}
            port = _free_port(reserved | used)
        log.info(
            "Loading %s on port %d (%s)%s",
            entry.key,
            port,
            reason,
            f"; unloading ports {sorted(evict)} first" if evict else "",
        )
        self._draining |= evict
        try:
            pids = {self.manager.status(p).pid for p in evict} - {None}
            for p in sorted(evict):
                await self.manager.unload_model(p)
            await self._settle(pids)
            st = await self.manager.load_model(entry.path, port=port, **kw)
        except _LOAD_ERRORS as e:
            self._tell_failed(entry, str(e), self.manager.log_path(port))
            raise LoadFailedError(f"Cannot load {entry.key}: {e}") from e
        finally:
            self._draining -= evict
        return self._instance(st)

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

    # ── Using ──────────────────────────────────────────────────────────────────
    @contextlib.asynccontextmanager
    async def holding(
        self, model: str | ModelEntry, *, jit: bool = True
    ) -> AsyncIterator[Instance]:
        """Count a request on the ready instance of ``model`` (loading it first when ``jit``);
        eviction waits until the block ends."""
        inst = await self._acquire(self.entry(model), jit)
        try:
            yield inst
        finally:
            self.usage.leave(inst.port)

    async def _acquire(self, entry: ModelEntry, jit: bool) -> Instance:
        for _ in range(8):
            st = self._alive_for(entry)
            if st is not None and st.state is ServerState.READY and st.port not in self._draining:
                self.usage.enter(st.port)
                return self._instance(st)
            if not jit:
                raise ModelNotLoadedError(
                    f"Model {entry.key} is not loaded and JIT loading is off "
                    "(JIT_LOAD=false). Load it first: POST /api/v1/models/load"
                )
            if st is not None and st.state is ServerState.READY:
                # Ready, but a load is unloading it: let that load finish, then load it again.
                async with self._lock:
                    pass
                continue
            inst, reserved = await self._ensure(entry, None, False, reserve=True)
            if reserved:
                return inst  # counted on the new instance before anyone could evict it
        raise LoadFailedError(
            f"{entry.key} was unloaded again by other requests before it could be used; "
            "retry, or set RUN_MODE=parallel if the models fit in memory together"
        )

    async def cancel_load(self, model: str | ModelEntry) -> bool:
        """Stop a load under way and wait until its server is stopped; True if there was one."""
        task = self._loads.get(self.entry(model).file)
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.wait({task})  # its end, not its error (our own cancel still ends us)
        return True

    def hold(self, inst: Instance, holder: str) -> None:
        """Pin ``inst`` for ``holder`` (a run): placement never evicts it until ``release``."""
        self.usage.hold(inst.port, holder)

    def release(self, holder: str) -> None:
        self.usage.release(holder)

    # ── Unloading ──────────────────────────────────────────────────────────────
    async def unload(self, model: str | ModelEntry) -> list[int]:
        """Unload ``model`` after its requests finish (bounded); returns the ports freed. A
        load of it still under way is cancelled (its server stopped)."""
        entry = self.entry(model)
        await self.cancel_load(entry)
        async with self._lock:
            ports = [
                p
                for p, st in self.manager.statuses().items()
                if st.state is not ServerState.STOPPED
                and st.spec is not None
                and (st.spec.model_path, st.spec.mmproj or None) == entry.file
            ]
            await self._unload_ports(ports)
            return ports

    async def unload_all(self) -> list[int]:
        async with self._lock:
            ports = [
                p
                for p, st in self.manager.statuses().items()
                if st.state is not ServerState.STOPPED
            ]
            await self._unload_ports(ports)
            return ports

    async def unload_port(self, port: int, *, only_if_idle: bool = False) -> bool:
        """Unload whatever runs on ``port`` (the idle unloader, the models window's row)."""
        async with self._lock:
            if only_if_idle and (self.usage.busy(port) or port in self._draining):
                return False
            if self.manager.status(port).state is ServerState.STOPPED:
                return False
            await self._unload_ports([port])
            return True

    async def _unload_ports(self, ports: list[int]) -> None:
        if not ports:
            return
        wait = self._settings().EVICT_WAIT_SECONDS
        self._draining |= set(ports)
        try:
            flying = [p for p in ports if self.usage.in_flight(p)]
            if flying:
                log.info("Waiting for requests on ports %s to finish", flying)
                if not await self.usage.wait_idle(flying, wait, holds=False):
                    log.warning(
                        "Requests on ports %s still running after %g s; unloading anyway",
                        flying,
                        wait,
                    )
            results = await asyncio.gather(
                *(self.manager.unload_model(p) for p in ports), return_exceptions=True
            )
            for port, r in zip(ports, results, strict=True):
                if isinstance(r, BaseException):
                    log.error("Unloading port %d failed: %s", port, r)
        finally:
            self._draining -= set(ports)

    # ── Recovery (the supervisor) ──────────────────────────────────────────────
    def describe(self, st: ServerStatus) -> str:
        """``"<model> on port N"`` for a notice."""
        name = st.model_name or "llama-server"
        if st.spec is not None:
            key, entry = self._key_for(st)
            name = entry.title if entry else key
        return f"{name} on port {st.port}"

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
        for task in list(self._loads.values()):
            task.cancel()
