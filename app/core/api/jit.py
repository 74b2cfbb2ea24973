"""Models on demand: single-flight loads, in-flight request counts, and idle unload.

Every load the API asks for goes through one lock, so two first requests never start two
servers, and a swap in ``switch`` mode is one decision. Requests to a model that is
ready do not touch the lock: they only count themselves on the model's port, and a swap
that evicts that port first waits (bounded) until the count drops to zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from app.core.models.catalogue import Catalogue, CatalogueEntry
from app.core.models.placement import Placement
from app.core.models.profiles import ModelProfile
from app.core.notices import Level, Notice
from app.core.servers.manager import ServerExitedError
from app.core.servers.ports import PortInUseError
from app.core.servers.states import ServerState, ServerStatus, StateEvent

if TYPE_CHECKING:
    from app.core.app_core import AppCore

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 600.0  # the longest a swap waits for requests on the model it evicts


class LoadFailedError(RuntimeError):
    """The model could not be loaded; the message says why (answered as 503)."""


class ModelNotLoadedError(RuntimeError):
    """The model is not loaded and JIT loading is off."""


class ModelPool:
    def __init__(
        self,
        core: AppCore,
        catalogue: Catalogue,
        placement: Placement,
        *,
        drain_timeout: float = DRAIN_TIMEOUT,
    ) -> None:
        self._core = core
        self._manager = core.manager
        self._settings = core.settings
        self._catalogue = catalogue
        self._placement = placement
        self._drain_timeout = drain_timeout
        self._lock = asyncio.Lock()
        self._loads: dict[str, asyncio.Task[ServerStatus]] = {}
        self._inflight: dict[int, int] = {}
        self._quiet: dict[int, asyncio.Event] = {}
        self._draining: set[int] = set()
        self._last_used: dict[int, float] = {}
        self._kick = asyncio.Event()
        self._idle_task: asyncio.Task[None] | None = None
        self._unsubscribe = None

    # ── What is loaded where ─────────────────────────────────────────────────
    def _holds(self, st: ServerStatus, profile: ModelProfile) -> bool:
        return (
            st.spec is not None
            and st.spec.model_path == profile.model_path
            and (st.spec.mmproj or None) == (profile.mmproj or None)
        )

    def ready(self, profile: ModelProfile, *, usable: bool = False) -> ServerStatus | None:
        """The ready server holding ``profile``'s model; ``usable``: not being evicted."""
        for port, st in self._manager.statuses().items():
            if st.state is ServerState.READY and self._holds(st, profile):
                if usable and port in self._draining:
                    continue
                return st
        return None

    def loaded(self) -> list[tuple[ModelProfile, ServerStatus]]:
        out = []
        for profile in self._catalogue.profiles():
            st = self.ready(profile)
            if st is not None:
                out.append((profile, st))
        return out

    def _held(self) -> list[tuple[CatalogueEntry, int]]:
        return [(self._catalogue.entry(p), st.spec.ctx_size) for p, st in self.loaded() if st.spec]

    def is_draining(self, port: int) -> bool:
        """True while a swap or unload waits for the requests on ``port`` to finish."""
        return port in self._draining

    def in_flight(self, port: int) -> int:
        return self._inflight.get(port, 0)

    # ── Loading and unloading ───────────────────────────────────────────────────
    async def ensure_loaded(self, profile: ModelProfile, ctx: int | None = None) -> ServerStatus:
        """Ready ``profile`` (with context ``ctx`` when given); one load however many ask."""
        while True:
            st = self.ready(profile)
            if st is not None and st.spec is not None and ctx in (None, st.spec.ctx_size):
                return st
            task = self._loads.get(profile.name)
            if task is None:
                task = asyncio.create_task(self._load(profile, ctx), name=f"load-{profile.name}")
                self._loads[profile.name] = task
                task.add_done_callback(lambda t, n=profile.name: self._load_done(n, t))
                return await asyncio.shield(task)
            st = await asyncio.shield(task)
            if ctx in (None, st.spec.ctx_size if st.spec else None):
                return st

    def _load_done(self, name: str, task: asyncio.Task[ServerStatus]) -> None:
        if self._loads.get(name) is task:
            del self._loads[name]
        if not task.cancelled():
            task.exception()  # retrieved here: a load nobody waits for any more is no error

    async def _load(self, profile: ModelProfile, ctx: int | None) -> ServerStatus:
        async with self._lock:
            st = self.ready(profile)
            if st is not None and st.spec is not None and ctx in (None, st.spec.ctx_size):
                return st
            problem = profile.problem()
            if problem:
                raise LoadFailedError(f"Cannot load {profile.model_id}: {problem}")
            s = self._settings
            ctx_size = s.LLAMA_CTX_SIZE if ctx is None else ctx
            entries = await self._catalogue.entries_async()
            free = None
            if s.RUN_MODE == "auto":  # a GPU probe can block (nvidia-smi): off the loop
                loop = asyncio.get_running_loop()
                free = await loop.run_in_executor(None, self._placement.free_memory)
            decision = self._placement.decide(entries, self._held(), free)
            target = self._placement.port_for(profile, decision.mode)
            alive = {p for p, x in self._manager.statuses().items() if x.state.alive}
            evict = {p for p in alive if p != target} if decision.mode == "switch" else set()
            drain = evict | ({target} & alive)
            log.info(
                "Loading %s on port %d (%s)%s",
                profile.model_id,
                target,
                decision.reason,
                f"; evicting ports {sorted(evict)}" if evict else "",
            )
            self._draining |= drain
            try:
                await self._drain(drain)
                for port in sorted(evict):
                    await self._manager.unload_model(port)
                return await self._manager.load_model(
                    profile.model_path,
                    port=target,
                    n_gpu_layers=s.LLAMA_GPU_LAYERS,
                    ctx_size=ctx_size,
                    mmproj=profile.mmproj,
                    extra_args=self._core.extra_args_for(profile),
                    timeout=s.LLAMA_READY_TIMEOUT,
                )
            except (
                FileNotFoundError,
                PermissionError,
                PortInUseError,
                ServerExitedError,
                TimeoutError,
                RuntimeError,
                OSError,
            ) as e:
                self._core.notices.emit(
                    Notice(
                        Level.ERROR,
                        f"Loading {profile.title} ({profile.model_id}) for the API failed",
                        str(e),
                        self._manager.log_path(target),
                    )
                )
                raise LoadFailedError(f"Cannot load {profile.model_id}: {e}") from e
            finally:
                self._draining -= drain
                self._kick.set()

    async def unload(self, profile: ModelProfile) -> list[int]:
        """Unload ``profile`` from every port that holds it, after its requests finish."""
        async with self._lock:
            ports = [
                p
                for p, st in self._manager.statuses().items()
                if st.state.alive and self._holds(st, profile)
            ]
            self._draining |= set(ports)
            try:
                await self._drain(set(ports))
                for port in ports:
                    await self._manager.unload_model(port)
            finally:
                self._draining -= set(ports)
            return ports

    async def _drain(self, ports: set[int]) -> None:
        waits = [self._quiet_event(p).wait() for p in ports if self.in_flight(p)]
        if not waits:
            return
        log.info("Waiting for requests on ports %s to finish", sorted(ports))
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self._drain_timeout)
        except TimeoutError:
            log.warning(
                "Requests on ports %s still running after %g s; unloading anyway",
                sorted(ports),
                self._drain_timeout,
            )

    def _quiet_event(self, port: int) -> asyncio.Event:
        ev = self._quiet.get(port)
        if ev is None:
            ev = self._quiet[port] = asyncio.Event()
            if not self.in_flight(port):
                ev.set()
        return ev

    # ── Requests ──────────────────────────────────────────────────────────────
    @contextlib.asynccontextmanager
    async def use(self, profile: ModelProfile, *, jit: bool) -> AsyncIterator[int]:
        """Count a request on the port serving ``profile`` (loading it first if allowed)."""
        port = await self._acquire(profile, jit)
        try:
            yield port
        finally:
            self._release(port)

    async def _acquire(self, profile: ModelProfile, jit: bool) -> int:
        for _ in range(8):
            st = self.ready(profile, usable=True)
            if st is not None:
                self._inflight[st.port] = self.in_flight(st.port) + 1
                self._quiet_event(st.port).clear()
                self._touch(st.port)
                return st.port
            if not jit:
                raise ModelNotLoadedError(
                    f"Model {profile.model_id} is not loaded and JIT loading is off "
                    "(JIT_LOAD=false). Load it first: POST /api/v1/models/load"
                )
            if self.ready(profile) is not None:
                # Loaded, but a swap is evicting it: let that swap finish, then load it again.
                async with self._lock:
                    pass
                continue
            await self.ensure_loaded(profile)
        raise LoadFailedError(
            f"{profile.model_id} was unloaded again by other requests before it could be used; "
            "retry, or set RUN_MODE=parallel if both models fit in memory"
        )

    def _release(self, port: int) -> None:
        n = self.in_flight(port) - 1
        self._inflight[port] = max(0, n)
        if n <= 0:
            self._quiet_event(port).set()
        self._touch(port)

    def _touch(self, port: int) -> None:
        self._last_used[port] = time.time()
        self._kick.set()

    # ── Idle unload ────────────────────────────────────────────────────────────
    @property
    def idle_seconds(self) -> float:
        return self._settings.IDLE_UNLOAD_MINUTES * 60.0

    def idle_remaining(self) -> dict[int, float]:
        """Seconds until each ready port is unloaded for being idle; empty when it never is."""
        idle = self.idle_seconds
        if idle <= 0:
            return {}
        now = time.time()
        out = {}
        for port, st in self._manager.statuses().items():
            if st.state is not ServerState.READY:
                continue
            if self.in_flight(port):
                out[port] = idle
                continue
            since = max(self._last_used.get(port, 0.0), st.ready_at or 0.0)
            out[port] = max(0.0, since + idle - now)
        return out

    def start(self) -> None:
        self._unsubscribe = self._manager.subscribe(self._on_state)
        if self.idle_seconds > 0:
            self._idle_task = asyncio.create_task(self._idle_loop(), name="idle-unload")

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self._idle_task:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
            self._idle_task = None
        for task in list(self._loads.values()):
            task.cancel()

    def _on_state(self, event: StateEvent) -> None:
        self._kick.set()

    async def _idle_loop(self) -> None:
        while True:
            self._kick.clear()
            remaining = self.idle_remaining()
            due = sorted(p for p, r in remaining.items() if r <= 0)
            for port in due:
                await self._idle_unload(port)
            if due:
                continue
            timeout = min(remaining.values()) if remaining else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout)

    async def _idle_unload(self, port: int) -> None:
        async with self._lock:
            if self.idle_remaining().get(port, 1.0) > 0 or port in self._draining:
                return
            name = self._manager.status(port).model_name
            log.info(
                "Unloading %s from port %d: no requests for %g min (IDLE_UNLOAD_MINUTES)",
                name,
                port,
                self._settings.IDLE_UNLOAD_MINUTES,
            )
            try:
                await self._manager.unload_model(port)
            except Exception as e:
                log.error("Idle unload of port %d failed: %s", port, e)
                self._last_used[port] = time.time()  # try again after another idle period
                return
            self._last_used.pop(port, None)
