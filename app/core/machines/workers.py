"""The llama.cpp RPC workers the app uses (other machines' GPUs): each checked through the
RPC protocol's own requests (``rpc_protocol``), shown with its state and the reason, weighed
by placement, and watched while a model runs across it.

- A worker no model of this app uses is asked its protocol version and its devices' free
  memory: at start, when ``RPC_WORKERS`` changes, every ``check_every`` seconds, and before
  a load that may use it (when its last answer is older than ``FRESH_SECONDS``). One of
  another major protocol version than this machine's llama.cpp, or a newer minor one, is
  shown as such and never used (llama-server would refuse it).
- A worker serves one llama-server at a time and answers nothing else meanwhile, so one a
  model of this app runs across is not asked: the model's own connection to it is watched
  (every ``watch_every`` seconds, from the process's sockets). When that connection is
  closed, the worker is gone: the model's server is stopped and marked failed with the
  worker named, and the supervisor does not start it again on the same workers (``lost``);
  the next request loads it again, here or on the workers left, when it fits.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

import psutil

from app.config import SettingsSource
from app.core.events import Listeners
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.lifecycle.placement import Worker
from app.core.machines.rpc_protocol import (
    Busy,
    Device,
    OtherProtocol,
    RpcError,
    Version,
    accepts,
    ask_worker,
)
from app.core.models.launch_args import rpc_of
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.states import ServerState, ServerStatus
from app.core.units import size_text
from app.settings_types import host_port, worker_addresses

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0
WATCH_SECONDS = 2.0
FRESH_SECONDS = 5.0

LocalVersion = Callable[[], Awaitable[Version | None]]


class WorkerState(enum.StrEnum):
    UNCHECKED = "not checked yet"
    ONLINE = "online"
    IN_USE = "in use"  # a model of this app runs across it
    BUSY = "busy"  # another llama-server has it
    OFFLINE = "offline"
    OTHER_PROTOCOL = "other protocol"


@dataclass(frozen=True)
class WorkerStatus:
    address: str
    state: WorkerState = WorkerState.UNCHECKED
    reason: str = ""  # why it is offline, busy or of another protocol; what uses it
    version: Version | None = None
    devices: tuple[Device, ...] = ()
    checked_at: float = 0.0  # time.monotonic() of the last answer (or failure)

    @property
    def free(self) -> int:
        return sum(d.free for d in self.devices)

    @property
    def problem(self) -> str:
        """Why a model cannot be put on it now ("is offline: connection refused"); "" if
        one can."""
        if self.state is WorkerState.ONLINE:
            return ""
        return f"is {self.state}" + (f": {self.reason}" if self.reason else "")

    def text(self) -> str:
        """One line for the tray and the models window."""
        if self.state in (WorkerState.ONLINE, WorkerState.IN_USE):
            n = len(self.devices)
            room = f"{n} device{'s' if n != 1 else ''}, {size_text(self.free)} free"
            used = f", {self.reason}" if self.state is WorkerState.IN_USE else ""
            return f"{self.address}: {self.state}{used} ({room}, protocol {self.version})"
        return f"{self.address}: {self.problem.removeprefix('is ')}"


class Workers:
    """The RPC workers of ``RPC_WORKERS`` and those a running model uses; a core service."""

    def __init__(
        self,
        settings: SettingsSource,
        lifecycle: ModelLifecycle,
        notices: NoticeBus,
        *,
        local_version: LocalVersion,
        subscribe: Callable[[Callable], Callable[[], None]] | None = None,
        check_every: float = CHECK_SECONDS,
        watch_every: float = WATCH_SECONDS,
    ) -> None:
        self._settings = settings
        self.lifecycle = lifecycle
        self._notices = notices
        self._local_version = local_version
        self._subscribe = subscribe
        self.check_every = check_every
        self.watch_every = watch_every
        self.statuses: dict[str, WorkerStatus] = {}
        self._listeners: Listeners[[]] = Listeners("RPC workers")
        self._tasks: list[asyncio.Task] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._failing: set[tuple[int, int | None]] = set()  # (port, pid) being stopped
        self._told: set[tuple[int, int | None]] = set()  # (port, pid) the user was told of

    # ── Reading ────────────────────────────────────────────────────────────────
    def configured(self) -> list[str]:
        return worker_addresses(self._settings().RPC_WORKERS)

    def in_use(self) -> dict[str, list[ServerStatus]]:
        """``{address: [status]}``: the live servers of this app running across each worker."""
        out: dict[str, list[ServerStatus]] = {}
        for st in self.lifecycle.manager.statuses().values():
            if st.state.alive and st.spec is not None:
                for address in rpc_of(st.spec.extra_args) or ():
                    out.setdefault(address, []).append(st)
        return out

    def shown(self) -> list[WorkerStatus]:
        """The workers to show: those of ``RPC_WORKERS``, then others a model runs across."""
        addresses = dict.fromkeys([*self.configured(), *self.in_use()])
        return [self.statuses.get(a) or WorkerStatus(a) for a in addresses]

    def subscribe(self, cb: Callable[[], object]) -> Callable[[], None]:
        """``cb()`` whenever a worker's status changes."""
        return self._listeners.add(cb)

    # ── Checking ───────────────────────────────────────────────────────────────
    async def check(
        self, addresses: Iterable[str] | None = None, *, fresh: float = 0.0
    ) -> list[WorkerStatus]:
        """Check ``addresses`` (default: those shown) now; one answered within ``fresh``
        seconds is not asked again."""
        wanted = list(
            dict.fromkeys(addresses if addresses is not None else [s.address for s in self.shown()])
        )
        used = self.in_use()
        now = time.monotonic()
        todo = []
        for address in wanted:
            old = self.statuses.get(address)
            if address in used:
                self._set(self._in_use(address, used[address]))
            elif old is None or old.state is WorkerState.IN_USE or now - old.checked_at > fresh:
                todo.append(address)
        results = await asyncio.gather(*(self._probe(a) for a in todo))
        for st in results:
            if self.in_use().get(st.address):  # a load took it meanwhile
                continue
            self._set(st)
        return [self.statuses.get(a) or WorkerStatus(a) for a in wanted]

    def _in_use(self, address: str, servers: list[ServerStatus]) -> WorkerStatus:
        old = self.statuses.get(address) or WorkerStatus(address)
        names = ", ".join(self.lifecycle.describe(st) for st in servers)
        return replace(old, state=WorkerState.IN_USE, reason=f"running {names}")

    async def _probe(self, address: str) -> WorkerStatus:
        host, port = host_port(address)
        now = time.monotonic()
        old = self.statuses.get(address)
        try:
            info = await ask_worker(host, port)
        except Busy as e:
            return WorkerStatus(address, WorkerState.BUSY, str(e), checked_at=now)
        except OtherProtocol as e:
            return WorkerStatus(address, WorkerState.OTHER_PROTOCOL, str(e), checked_at=now)
        except RpcError as e:
            if old is not None and old.state is WorkerState.BUSY and "no answer" in str(e):
                # a busy worker's queue of waiting connections is full: still busy, or down
                why = "still no answer: serving another llama-server, or down"
                return replace(old, reason=why, checked_at=now)
            return WorkerStatus(address, WorkerState.OFFLINE, str(e), checked_at=now)
        local = await self._local_version()
        if local is not None and not info.version.works_with(local):
            why = (
                f"speaks RPC protocol {info.version}, this machine's llama.cpp {local}: "
                "run the same llama.cpp release on both machines"
            )
            return WorkerStatus(
                address, WorkerState.OTHER_PROTOCOL, why, info.version, info.devices, now
            )
        return WorkerStatus(address, WorkerState.ONLINE, "", info.version, info.devices, now)

    def _set(self, st: WorkerStatus) -> None:
        old = self.statuses.get(st.address)
        self.statuses[st.address] = st
        if old is None or (old.state, old.reason, old.free) != (st.state, st.reason, st.free):
            if st.state in (WorkerState.OFFLINE, WorkerState.OTHER_PROTOCOL):
                log.warning("RPC worker %s", st.text())
            else:
                log.info("RPC worker %s", st.text())
            self._listeners.emit()

    async def room(self, named: tuple[str, ...] | None) -> list[Worker]:
        """The workers a load may use (``RPC_WORKERS`` and those its settings name), as
        placement weighs them, checked if their last answer is old."""
        addresses = [*self.configured(), *(named or ())]
        if not addresses:
            return []
        found = await self.check(addresses, fresh=FRESH_SECONDS)
        return [Worker(st.address, st.free if not st.problem else 0, st.problem) for st in found]

    # ── A worker lost ──────────────────────────────────────────────────────────
    async def lost(self, status: ServerStatus) -> str | None:
        """Why the server of ``status`` cannot run again as it did: the first of its
        workers that no longer takes connections ("RPC worker 10.0.0.2:50052 is gone:
        connection refused"); None when each does (or it runs across none)."""
        spec = status.spec
        for address in (rpc_of(spec.extra_args) if spec else None) or ():
            host, port = host_port(address)
            why = await accepts(host, port)
            if why is not None:
                now = time.monotonic()
                self._set(WorkerStatus(address, WorkerState.OFFLINE, why, checked_at=now))
                return f"RPC worker {address} is gone ({why})"
        return None

    async def stopped_by_loss(self, status: ServerStatus) -> str | None:
        """``lost`` for a server that failed (the supervisor asks before a restart): when a
        worker is gone the user is told, once, with the worker named."""
        why = await self.lost(status)
        if why is not None:
            self._tell_lost(status, why)
        return why

    def _tell_lost(self, st: ServerStatus, why: str) -> None:
        key = (st.port, st.pid)
        if key in self._told:
            return
        self._told = {*list(self._told)[-50:], key}
        what = self.lifecycle.describe(st)
        self._notices.emit(
            Notice(
                Level.ERROR,
                f"{what} stopped: {why.split(' (')[0]}",
                f"{what} failed: {why}. Its requests in flight were answered 503 naming the "
                "worker; it is not started again on the same workers. The next request "
                "loads it again, on this machine or on the workers left, when it fits.",
                st.log_path,
            )
        )

    async def lost_on_port(self, port: int) -> str | None:
        """``lost`` for the server on ``port`` (the API, after an answer broke off)."""
        return await self.lost(self.lifecycle.manager.status(port))

    async def _watch(self) -> None:
        """Stop a ready server whose connection to one of its workers is closed."""
        for address, servers in self.in_use().items():
            for st in servers:
                if st.state is not ServerState.READY or (st.port, st.pid) in self._failing:
                    continue
                if await _connected(st.pid, address):
                    continue
                why = await self.lost(st) or f"RPC worker {address} closed the connection"
                await self._fail(st, why)

    async def _fail(self, st: ServerStatus, why: str) -> None:
        key = (st.port, st.pid)
        self._failing.add(key)
        try:
            self._tell_lost(st, why)
            pid = st.pid
            await self.lifecycle.fail(
                st.port, why, lambda s: s.state is ServerState.READY and s.pid == pid
            )
        finally:
            self._failing.discard(key)

    # ── Service ────────────────────────────────────────────────────────────────
    async def start(self) -> None:
        if self._subscribe is not None:
            self._unsubscribe = self._subscribe(self._on_settings)
        self._tasks = [
            asyncio.create_task(self._every(self.check_every, self.check), name="rpc-check"),
            asyncio.create_task(self._every(self.watch_every, self._watch), name="rpc-watch"),
        ]

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    def _on_settings(self, old, new) -> None:
        if old.RPC_WORKERS != new.RPC_WORKERS:
            task = asyncio.get_running_loop().create_task(self.check(), name="rpc-check-now")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._listeners.emit()

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            if self.shown():
                try:
                    await job()
                except Exception:
                    log.exception("Checking the RPC workers failed")
            await asyncio.sleep(seconds)


async def _connected(pid: int | None, address: str) -> bool:
    """Whether process ``pid`` has an open connection to ``address`` (unknown: True)."""
    if pid is None:
        return True
    host, port = host_port(address)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        ips = {info[4][0] for info in infos}
        conns = await loop.run_in_executor(None, _connections, pid)
    except (OSError, psutil.Error):
        return True
    return any(
        c.raddr and c.raddr.port == port and c.raddr.ip in ips and c.status == "ESTABLISHED"
        for c in conns
    )


def _connections(pid: int) -> list:
    return psutil.Process(pid).net_connections(kind="inet")
