"""Each model's state in the lifecycle, in one object: ``ModelRecord`` (its named state, its
port, its load under way, the config and TTL a client chose, its requests and holds), and
``MODEL_TRANSITIONS``, the table of which state may follow which, checked on every change
and logged.

A record is kept by the model's file, so it outlives its process: its last use stays for
the tray's order, a run's hold stays while the supervisor restarts it. The manager's port
events move it through the process states; the lifecycle adds WAITING (a load asked, no
server yet), DRAINING (no new requests while a load or an unload waits for the ones in
flight) and NOT_RESPONDING (its server did not answer a health check in time: new
requests wait while the supervisor decides whether it is hung).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from app.core.models.launch_args import LoadConfig
from app.core.servers.states import ServerState, ServerStatus, StateEvent
from app.core.transitions import IllegalTransitionError, Transitions

log = logging.getLogger(__name__)

File = tuple[str, str | None]  # (model path, projector path): ``ModelEntry.file``


class ModelState(enum.StrEnum):
    STOPPED = "stopped"  # no process, no load under way
    WAITING = "waiting"  # a load is under way, no server yet: room is being made for it
    STARTING = "starting"  # its server is starting
    READY = "ready"  # its server answers; requests are counted on it
    DRAINING = "draining"  # ready, but a load or unload waits for its requests: no new ones
    NOT_RESPONDING = "not responding"  # ready, but its health check is unanswered: no new
    # requests until it answers again or is declared hung (and restarted)
    STOPPING = "stopping"  # its server is being stopped
    FAILED = "failed"  # its server exited or hung; shown until unloaded or loaded again

    @property
    def alive(self) -> bool:
        """A process of the model exists."""
        return self in _ALIVE


_ALIVE = frozenset(
    {
        ModelState.STARTING,
        ModelState.READY,
        ModelState.DRAINING,
        ModelState.NOT_RESPONDING,
        ModelState.STOPPING,
    }
)

M = ModelState
MODEL_TRANSITIONS = Transitions(
    "model",
    ModelState,
    {
        # a load is asked; the supervisor restarts it; its server could not be spawned
        M.STOPPED: {M.WAITING, M.STARTING, M.FAILED},
        # its server starts; it could not be spawned; the load ended before (busy, cancel)
        M.WAITING: {M.STARTING, M.FAILED, M.STOPPED},
        # ready; cancelled or timed out (stopped, or gone); exited while loading
        M.STARTING: {M.READY, M.STOPPING, M.STOPPED, M.WAITING, M.FAILED},
        # a load or unload waits for its requests; unloaded or restarted; crashed or hung;
        # its health check went unanswered
        M.READY: {M.DRAINING, M.STOPPING, M.FAILED, M.NOT_RESPONDING},
        # the wait ended without stopping it; stopped; crashed while its requests ended
        M.DRAINING: {M.READY, M.STOPPING, M.FAILED},
        # it answers again; stopped as hung (or unloaded); it died
        M.NOT_RESPONDING: {M.READY, M.STOPPING, M.FAILED},
        # stopped (WAITING: a load of it goes on, elsewhere or with another config)
        M.STOPPING: {M.STOPPED, M.WAITING, M.FAILED},
        # a load is asked; the supervisor restarts it; cleared by an unload or replaced
        M.FAILED: {M.WAITING, M.STARTING, M.STOPPED},
    },
)

# What a port's server state means for the model it runs (STOPPED: see ``_after_stop``).
_FOLLOWS = {
    ServerState.STARTING: M.STARTING,
    ServerState.READY: M.READY,
    ServerState.STOPPING: M.STOPPING,
    ServerState.FAILED: M.FAILED,
}


class ModelRecord:
    """Everything the lifecycle knows about one model, by its file."""

    def __init__(self, file: File, clock: Callable[[], float], changed: Callable[[], None]) -> None:
        self.file = file
        self.state = M.STOPPED
        self.port: int | None = None  # where its process runs (ran, when it has none)
        self.status: ServerStatus | None = None  # its port's status (the manager's)
        self.load: asyncio.Task | None = None  # the load under way, however many asked
        self.config: LoadConfig | None = None  # the config a client asked its process for
        self.ttl: float | None = None  # a client's idle unload in seconds; None: the default
        self.in_flight = 0
        self.holders: set[str] = set()  # the FamilyLog runs that need it
        self.served = 0  # requests since its process started
        self.last_used = 0.0  # last request or ready; kept after unload
        self._clock = clock
        self._changed = changed  # wakes ``ModelRecords.wait_idle``

    def __repr__(self) -> str:
        return f"<model {self.name} {self.state} port={self.port}>"

    @property
    def name(self) -> str:
        return Path(self.file[0]).name

    @property
    def process(self) -> ServerStatus | None:
        """The status of its process, while it has one."""
        return self.status if self.state.alive else None

    @property
    def busy(self) -> bool:
        """Requests in flight or a run holding it: never evicted."""
        return bool(self.in_flight or self.holders)

    def become(self, new: ModelState, why: str) -> None:
        """Change the state as ``MODEL_TRANSITIONS`` allows (``IllegalTransitionError``
        else, nothing changed), and log it; wakes those waiting for a change."""
        MODEL_TRANSITIONS.check(self.state, new, f"Model {self.name}")
        if new is not self.state:
            log.info("Model %s: %s -> %s (%s)", self.name, self.state, new, why)
            self.state = new
            self._changed()

    # ── Requests ───────────────────────────────────────────────────────────────
    def enter(self) -> None:
        self.in_flight += 1
        self.served += 1
        self.last_used = self._clock()

    def leave(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.last_used = self._clock()
        self._changed()

    def touch(self) -> None:
        self.last_used = self._clock()

    # ── Its process ────────────────────────────────────────────────────────────
    def follow(self, event: StateEvent) -> None:
        """Its server on ``event.port`` changed state: the model's state follows."""
        self.port, self.status = event.port, event.status
        if event.new is ServerState.STOPPED:
            self._process_gone()
            self.config = None  # a client's choices were for that process
            self.ttl = None
            self.become(self._after_stop(), f"port {event.port}: {event.old} -> stopped")
            return
        if event.new is ServerState.FAILED:
            self._process_gone()  # the same config and TTL when the supervisor restarts it
        elif event.new is ServerState.READY:
            self.last_used = max(self.last_used, event.status.ready_at or 0.0)
            if event.old is ServerState.READY and self.state is not M.READY:
                return  # another field of a ready server changed: draining stays draining
        self.become(_FOLLOWS[event.new], f"port {event.port}: {event.old} -> {event.new}")

    def replaced(self, by: ModelRecord) -> None:
        """Its port, where it had failed, now runs ``by``: nothing of it is left there."""
        if self.state is M.FAILED:
            self.become(self._after_stop(), f"port {self.port} now runs {by.name}")

    def load_ended(self, status: ServerStatus | None) -> None:
        """Its load is over without a server of its own (failed, busy or cancelled first);
        ``status``: what its port shows now."""
        if self.state is M.WAITING:
            failed = status is not None and status.state is ServerState.FAILED
            self.become(M.FAILED if failed else M.STOPPED, "its load ended")

    def _after_stop(self) -> ModelState:
        return M.WAITING if self.load is not None and not self.load.done() else M.STOPPED

    def _process_gone(self) -> None:
        self.in_flight = 0
        self.served = 0
        self._changed()


class ModelRecords:
    """Every model's record by file, moved by the manager's port events (``follow``)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_file: dict[File, ModelRecord] = {}
        self._by_port: dict[int, ModelRecord] = {}  # the model each port last ran
        self._changed = asyncio.Event()  # set on every release; waiters clear it

    def of(self, file: File) -> ModelRecord:
        rec = self._by_file.get(file)
        if rec is None:
            rec = self._by_file[file] = ModelRecord(file, self._clock, self._changed.set)
        return rec

    def get(self, file: File) -> ModelRecord | None:
        return self._by_file.get(file)

    def on_port(self, port: int) -> ModelRecord | None:
        """The model whose process runs (or last ran) on ``port``."""
        rec = self._by_port.get(port)
        return rec if rec is not None and rec.port == port else None

    def of_status(self, st: ServerStatus) -> ModelRecord | None:
        """The record ``st`` is the process of (None for a status an old port still shows
        of a model that runs elsewhere now)."""
        rec = self.on_port(st.port)
        return rec if rec is not None and st.spec is not None and rec.file == st.spec.file else None

    def all(self) -> list[ModelRecord]:
        return list(self._by_file.values())

    def follow(self, event: StateEvent) -> ModelRecord | None:
        """Move the model of ``event`` (None without one, or for an old port's status)."""
        spec = event.status.spec
        if spec is None:
            return None
        rec = self.of(spec.file)
        if rec.state.alive and rec.port != event.port:
            if event.new is ServerState.STARTING:
                raise IllegalTransitionError(
                    f"Model {rec.name}: a second process on port {event.port} while it "
                    f"runs on port {rec.port}"
                )
            return None  # a failure an old port still showed is being cleared
        before = self._by_port.get(event.port)
        if before is not None and before is not rec and before.port == event.port:
            before.replaced(rec)
        self._by_port[event.port] = rec
        rec.follow(event)
        return rec

    # ── Holds and waits ────────────────────────────────────────────────────────
    def release(self, holder: str) -> list[ModelRecord]:
        """Let go of everything ``holder`` holds."""
        held = [r for r in self._by_file.values() if holder in r.holders]
        for r in held:
            r.holders.discard(holder)
        if held:
            self._changed.set()
        return held

    @contextlib.contextmanager
    def draining(self, recs: Iterable[ModelRecord], why: str) -> Iterator[None]:
        """The ready ones among ``recs`` take no new requests inside the block; ready again
        after it unless it stopped them. (The lifecycle's lock keeps drains from overlapping.)"""
        marked = [r for r in recs if r.state is M.READY]
        for r in marked:
            r.become(M.DRAINING, why)
        try:
            yield
        finally:
            for r in marked:
                if r.state is M.DRAINING:
                    r.become(M.READY, "no longer drained")

    async def wait_change(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` holds (checked after each state change or release); False
        when ``timeout`` ran out first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                return done()
        return True

    async def wait_idle(
        self, recs: Iterable[ModelRecord], timeout: float, *, holds: bool = True
    ) -> bool:
        """Wait until none of ``recs`` is busy (``holds=False``: has requests in flight);
        False when ``timeout`` ran out first."""
        recs = list(recs)

        def busy() -> bool:
            return any(r.busy if holds else r.in_flight for r in recs)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while busy():
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(left):  # not wait_for: it can swallow a cancel
                    await self._changed.wait()
            except TimeoutError:
                return not busy()
        return True
