"""Crash supervision: restart a server that crashed or hung, with back-off and a limit.

A Qt-free service attached in ``bootstrap.build_core``. It listens to the manager's state
events: a server that goes from ready to failed (it exited on its own; the manager sees
the exit at once and ``AppCore`` tells the user with the exit code and the last log lines)
is started again with the same ``LaunchSpec`` after 1 s, 2 s, 4 s … When a port fails more
than ``max_crashes`` times within ``window`` seconds the supervisor gives up and says so.

A server can also hang. Every quarter of ``HUNG_PROBE_SECONDS`` each ready server gets a
health check (``hung.HungProbe``: ``/health`` while it is busy, ``/slots`` while idle).
A check unanswered for ``probe_timeout`` seconds makes the model "not responding" (the
models window and ``--ps`` show it; new requests wait); an answer makes it ready again. A
check unanswered for ``HUNG_PROBE_SECONDS`` means hung: its clients get 503 with the reason
at once (``ModelLifecycle.declare_hung``), the user is told, and it is restarted the same
way. A client that waited ``UPSTREAM_READ_TIMEOUT_SECONDS`` for a byte has its server
checked at once (``ModelLifecycle.suspect``). Any answer, even an error status, means the
request path is alive; a refused connection means the process is exiting, which the
manager reports itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from app.core.clock import Clock, SystemClock
from app.core.lifecycle.hung import HungProbe
from app.core.lifecycle.restart_policy import RestartPolicy
from app.core.models.launch_args import rpc_of
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.states import (
    FILE_CHANGED,
    FILE_GONE,
    LaunchSpec,
    ServerState,
    ServerStatus,
    StateEvent,
    file_note,
)

if TYPE_CHECKING:
    from app.config import SettingsSource
    from app.core.lifecycle.lifecycle import ModelLifecycle

log = logging.getLogger(__name__)

Condition = Callable[[ServerStatus], bool]
RemoteLost = Callable[[ServerStatus], Awaitable[str | None]]
"""Why a failed server that ran across RPC workers cannot start again as it was (a worker is
gone; the user has been told), or None."""


class Supervisor:
    """Restarts crashed and hung servers, through the model lifecycle."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        notices: NoticeBus,
        settings: SettingsSource,
        policy: RestartPolicy | None = None,
        *,
        clock: Clock | None = None,
        remote_lost: RemoteLost | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.manager = lifecycle.manager
        self.notices = notices
        self._settings = settings
        self._policy = policy  # fixed (tests); None: the settings in force, at each use
        self._clock = clock or SystemClock()  # the back-off, the 10-minute window, the probe
        self._remote_lost = remote_lost
        self._failures: dict[int, collections.deque[float]] = {}
        self._pending: dict[int, asyncio.Task[None]] = {}
        self._probe_task: asyncio.Task[None] | None = None
        self.hung = HungProbe(
            lifecycle,
            notices,
            lambda: self.policy,
            self._clock,
            restarting=self.pending_restart,
            on_hung=self._restart_hung,
        )
        self._unsubscribe: Callable[[], None] | None = None
        self._unwatch: Callable[[], None] | None = None
        self.restarts = 0  # how many restarts succeeded, for the UI and tests

    @property
    def policy(self) -> RestartPolicy:
        """The policy given, else one from the settings in force (``RESTART_ON_CRASH`` and
        ``HUNG_PROBE_SECONDS`` apply at once)."""
        return self._policy or RestartPolicy.from_settings(self._settings())

    # ── Service ───────────────────────────────────────────────────────────────
    async def start(self) -> None:
        self._unsubscribe = self.manager.subscribe(self._on_event)
        self._unwatch = self.lifecycle.watch_suspects(self.hung.check_now)
        if self._policy is None or self._policy.probe_interval > 0:
            self._probe_task = asyncio.create_task(self.hung.run(), name="hung-probe")

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self._unwatch:
            self._unwatch()
            self._unwatch = None
        checks = self.hung.take_checks()
        tasks = [t for t in (self._probe_task, *self._pending.values(), *checks) if t]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._probe_task = None
        self._pending.clear()

    def pending_restart(self, port: int) -> bool:
        return port in self._pending

    def checks_out(self) -> list[int]:
        """The ports whose health check is out now (sent, not yet answered)."""
        return self.hung.checks_out()

    def probe_all(self, client: httpx.AsyncClient, only: int | None = None) -> list[int]:
        """One round of the hung probe (``HungProbe.probe_all``); the ports found hung now."""
        return self.hung.probe_all(client, only)

    # ── Crashes ───────────────────────────────────────────────────────────────
    def _on_event(self, event: StateEvent) -> None:
        if event.old is ServerState.READY and event.new is ServerState.FAILED:
            spec = event.status.spec
            if spec is not None and self._remote_lost is not None and rpc_of(spec.extra_args):
                # across RPC workers: not started again on a worker that is gone
                self._pending[event.port] = asyncio.get_running_loop().create_task(
                    self._failed_remote(event.status, spec), name=f"remote-{event.port}"
                )
                return
            if spec is not None:
                self._failed(
                    event.port,
                    spec,
                    f"exited with code {event.status.exit_code}",
                    lambda st, spec=spec: st.state is ServerState.FAILED and st.spec == spec,
                )

    async def _failed_remote(self, status: ServerStatus, spec: LaunchSpec) -> None:
        """A server that ran across RPC workers failed: when one of its workers is gone it
        is left failed (the hook has told the user; the next request places the model
        again); else it is restarted as any other."""
        me = asyncio.current_task()
        port = status.port
        try:
            assert self._remote_lost is not None
            why = await self._remote_lost(status)
        finally:
            if self._pending.get(port) is me:
                del self._pending[port]
        if why is None:
            self._failed(
                port,
                spec,
                f"exited with code {status.exit_code}",
                lambda st: st.state is ServerState.FAILED and st.spec == spec,
            )
        else:
            log.error("%s: %s; not restarting it on the same workers", self._title(status), why)

    def _title(self, status: ServerStatus) -> str:
        return self.lifecycle.describe(status)

    def _failed(
        self,
        port: int,
        spec: LaunchSpec,
        reason: str,
        cond: Condition,
        hung_pid: int | None = None,
    ) -> None:
        """Count a failure of ``port`` and schedule a restart, or give up. A hung server
        that is not restarted is stopped and its port marked failed."""
        status = self.manager.status(port)
        what = self._title(status)
        if not self.policy.enabled:
            if hung_pid is not None:
                self._stop_hung(port, hung_pid, f"{what} was hung and has been stopped.")
            return
        now = self._clock.monotonic()
        hist = self._failures.setdefault(port, collections.deque())
        hist.append(now)
        while hist and now - hist[0] > self.policy.window:
            hist.popleft()
        if len(hist) > self.policy.max_crashes:
            n = len(hist)
            hist.clear()
            text = (
                f"{what} failed {n} times within {self.policy.window / 60:g} min "
                f"(last: {reason}), so it is not restarted again. Read the log, fix the "
                "cause, then load the model again."
            )
            log.error("Giving up on %s after %d failures", what, n)
            self.notices.emit(
                Notice(Level.ERROR, f"Gave up restarting {what}", text, self.manager.log_path(port))
            )
            if hung_pid is not None:
                self._stop_hung(port, hung_pid, text)
            return
        attempt = len(hist)
        delay = self.policy.delay(attempt)
        self.notices.emit(
            Notice(
                Level.WARNING,
                f"Restarting {what}",
                f"{what} {reason}; restarting it in {delay:g} s "
                f"(attempt {attempt} of {self.policy.max_crashes}).",
                self.manager.log_path(port),
            )
        )
        old = self._pending.get(port)
        if old is not None:
            old.cancel()
        self._pending[port] = asyncio.get_running_loop().create_task(
            self._restart_later(port, spec, delay, cond), name=f"restart-{port}"
        )

    async def _restart_later(
        self, port: int, spec: LaunchSpec, delay: float, cond: Condition
    ) -> None:
        me = asyncio.current_task()
        try:
            await self._clock.sleep(delay)
            if not self._file_allows_restart(port):
                if self.manager.status(port).state is ServerState.READY:  # a hung one
                    await self.lifecycle.fail(port, "hung; its file is gone: not restarted", cond)
                return
            status = await self.lifecycle.restart(port, cond)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("Restarting port %d failed: %s", port, e)
            if self._pending.get(port) is me:
                del self._pending[port]
            self._failed(
                port,
                spec,
                f"could not be restarted: {e}",
                lambda st: st.state is ServerState.FAILED and st.spec == spec,
            )
            return
        finally:
            if self._pending.get(port) is me:
                del self._pending[port]
        if status is None:
            log.info("Port %d changed meanwhile; not restarting it", port)
            return
        self.restarts += 1
        self.notices.emit(
            Notice(
                Level.INFO,
                f"Restarted {self._title(status)}",
                f"{self._title(status)} is ready again (PID {status.pid}).",
                self.manager.log_path(port),
            )
        )

    def _file_allows_restart(self, port: int) -> bool:
        """A restart loads the file at the model's path now: gone, no restart; replaced,
        the user is told before the new file is loaded."""
        st = self.manager.status(port)
        st = st.evolve(state=ServerState.FAILED) if st.state is ServerState.STOPPED else st
        note = file_note(st)
        what = self._title(st)
        if note == FILE_GONE:
            self.notices.emit(
                Notice(
                    Level.ERROR,
                    f"{what} not restarted",
                    f"The file of {what} was moved or deleted ({st.model_path}), so it is not "
                    "restarted. Load the model again from where its file is now.",
                    self.manager.log_path(port),
                )
            )
            return False
        if note == FILE_CHANGED:
            self.notices.emit(
                Notice(
                    Level.WARNING,
                    f"{what}: its file changed",
                    f"The file of {what} ({st.model_path}) was replaced since it was loaded; "
                    "the restart loads the new file.",
                    self.manager.log_path(port),
                )
            )
        return True

    def _stop_hung(self, port: int, pid: int, error: str) -> None:
        async def stop() -> None:
            try:
                await self.lifecycle.fail(
                    port, error, lambda s: s.state is ServerState.READY and s.pid == pid
                )
            finally:
                if self._pending.get(port) is task:
                    del self._pending[port]

        task = asyncio.get_running_loop().create_task(stop(), name=f"stop-hung-{port}")
        self._pending[port] = task

    def _restart_hung(self, st: ServerStatus) -> None:
        """The probe found the server ``st`` hung: restart it, or stop it."""
        if st.spec is not None:
            pid = st.pid
            self._failed(
                st.port,
                st.spec,
                "hung",
                lambda s: s.state is ServerState.READY and s.pid == pid,
                hung_pid=pid,
            )
