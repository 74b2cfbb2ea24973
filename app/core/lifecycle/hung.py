"""The hung-server probe: each ready server gets a health check every quarter of
``HUNG_PROBE_SECONDS`` (one at a time), also while it serves requests:

- with requests in flight (or with its port open to other programs, whose requests the app
  does not count), ``GET /health``, which llama-server answers from its HTTP thread even
  while its main loop spends seconds on one long prompt, so a busy server is never taken
  for a hung one (checked with the real binary: ``/slots`` waited 9.9 s behind a
  2,000-token prompt, ``/health`` answered in 14 ms; under SIGSTOP neither answers);
- idle (by the app's count), ``GET /slots``, which its main loop answers, so a main loop
  stuck while the HTTP thread still answers ``/health`` is found too.

A check unanswered for ``probe_timeout`` seconds makes the model "not responding"; an
answer makes it ready again; unanswered for ``HUNG_PROBE_SECONDS`` means hung, and the
``Supervisor`` that owns the probe restarts or stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from app.core.clock import Clock
from app.core.lifecycle.restart_policy import RestartPolicy
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.health import loopback_client
from app.core.servers.keys import auth_headers, server_url
from app.core.servers.states import ServerState, ServerStatus

if TYPE_CHECKING:
    from app.core.lifecycle.lifecycle import ModelLifecycle

log = logging.getLogger("app.core.lifecycle.supervisor")

PROBE_RECHECK = 30.0  # seconds: how soon the hung probe sees a new HUNG_PROBE_SECONDS


def probe_client() -> httpx.AsyncClient:
    """The checks' client: a new connection per check, none kept between them (a check
    comes every few seconds, and llama-server exits up to 10 ms later after SIGTERM while
    it holds an idle kept-alive connection: cpp-httplib looks at each every 10 ms)."""
    return loopback_client(limits=httpx.Limits(max_keepalive_connections=0))


@dataclass
class _Check:
    """The health check out to one server."""

    pid: int | None
    asked: float  # the clock's monotonic time it was sent
    task: asyncio.Task[bool]
    suspected: bool = False  # marked "not responding" meanwhile


class HungProbe:
    """Checks each ready server's health and finds the hung ones."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        notices: NoticeBus,
        policy: Callable[[], RestartPolicy],
        clock: Clock,
        *,
        restarting: Callable[[int], bool],
        on_hung: Callable[[ServerStatus], None],
    ) -> None:
        """``policy()``: the restart policy in force; ``restarting(port)``: a restart of
        ``port`` is pending (no check then); ``on_hung(status)``: a server found hung."""
        self.lifecycle = lifecycle
        self.manager = lifecycle.manager
        self.notices = notices
        self._policy = policy
        self._clock = clock
        self._restarting = restarting
        self._on_hung = on_hung
        self._checks: dict[int, _Check] = {}
        self._client: httpx.AsyncClient | None = None

    @property
    def policy(self) -> RestartPolicy:
        return self._policy()

    def take_checks(self) -> list[asyncio.Task[bool]]:
        """The checks out now, forgotten (to be cancelled)."""
        tasks = [c.task for c in self._checks.values()]
        self._checks.clear()
        return tasks

    async def run(self) -> None:
        """Look at every ready server each ``tick`` (a quarter of ``HUNG_PROBE_SECONDS``,
        read each time; 0: not now), so a change of it is seen within ``PROBE_RECHECK``."""
        async with probe_client() as client:
            self._client = client
            try:
                while True:
                    interval = self.policy.probe_interval
                    await self._clock.sleep(self.policy.tick if interval > 0 else PROBE_RECHECK)
                    if self.policy.probe_interval <= 0:
                        continue
                    try:
                        self.probe_all(client)
                    except Exception:
                        log.exception("The hung-server probe failed")
            finally:
                self._client = None

    def checks_out(self) -> list[int]:
        """The ports whose health check is out now (sent, not yet answered)."""
        return list(self._checks)

    def check_now(self, port: int) -> None:
        """A client found the server on ``port`` silent: check it at once."""
        if self._client is not None and self.policy.probe_interval > 0:
            self.probe_all(self._client, only=port)

    def _route(self, st: ServerStatus) -> str:
        """``/slots`` (its main loop answers) when it is idle by the app's count and only
        the app can reach it; else ``/health`` (its HTTP thread answers, also while the
        main loop is busy with a long prompt)."""
        busy = self.lifecycle.in_flight(st.port) > 0
        open_port = st.key is None  # no per-start key: other programs may be using it
        return "/health" if busy or open_port else "/slots"

    def probe_all(self, client: httpx.AsyncClient, only: int | None = None) -> list[int]:
        """Send a health check to each ready server that has none out, and judge the ones
        out; return the ports found hung now."""
        manager = self.manager
        loop = asyncio.get_running_loop()
        now = self._clock.monotonic()
        policy = self.policy
        hung = []
        for port, st in manager.statuses().items():
            if only is not None and port != only:
                continue
            check = self._checks.get(port)
            if (
                st.state is not ServerState.READY
                or manager.is_busy(port)  # a start, stop or restart is under way
                or self._restarting(port)
                or (check is not None and check.pid != st.pid)
            ):
                if check is not None:
                    check.task.cancel()
                    del self._checks[port]
                if st.state is not ServerState.READY or self._restarting(port):
                    continue
                check = None
            if check is None:
                task = loop.create_task(self._answers(client, st), name=f"health-{port}")
                self._checks[port] = _Check(st.pid, now, task)
                task.add_done_callback(lambda t, port=port: self._answered(port, t))
                continue
            silent = now - check.asked
            if silent >= policy.probe_interval:
                check.task.cancel()
                del self._checks[port]
                hung.append(port)
                self._hung(st, silent)
            elif silent >= policy.suspect_after and not check.suspected:
                check.suspected = True
                why = f"its health check is unanswered after {silent:.1f} s"
                if self.lifecycle.not_responding(port, st.pid, why):
                    log.warning("%s is not responding (%s)", self.lifecycle.describe(st), why)
        return hung

    def _answered(self, port: int, task: asyncio.Task[bool]) -> None:
        check = self._checks.get(port)
        if check is None or check.task is not task or task.cancelled():
            return
        if task.exception() is not None or not task.result():
            log.debug("The health check of port %d failed: %r", port, task.exception())
            return
        del self._checks[port]
        if check.suspected:
            self.lifecycle.responding(port, check.pid)

    async def _answers(self, client: httpx.AsyncClient, st: ServerStatus) -> bool:
        """True once the server answers (anything); False never: an unanswered check
        stays out until it is judged."""
        try:
            await client.get(
                server_url(st.port, self._route(st), st),
                headers=auth_headers(st),
                timeout=max(self.policy.probe_interval, 1.0) * 2,
            )
        except httpx.TimeoutException:
            await asyncio.Event().wait()  # judged by probe_all, which cancels it
        except httpx.TransportError:
            return True  # refused or reset: it is exiting, and the manager reports exits
        return True

    def _hung(self, st: ServerStatus, silent: float) -> None:
        what = self.lifecycle.describe(st)
        reason = (
            f"{what} stopped responding: its health check went unanswered for "
            f"{silent:.0f} s (HUNG_PROBE_SECONDS={self.policy.probe_interval:g}), so it is "
            + ("being restarted" if self.policy.enabled else "being stopped")
        )
        log.error("%s (PID %s) does not answer: hung", what, st.pid)
        self.lifecycle.declare_hung(st.port, reason)  # its clients get 503 with this now
        self.notices.emit(
            Notice(
                Level.ERROR,
                f"{what} is not responding",
                f"llama-server PID {st.pid} answered no health check for {silent:.0f} s and "
                "is treated as hung."
                + ("" if self.policy.enabled else " It is stopped; load it again to recover."),
                self.manager.log_path(st.port),
            )
        )
        self._on_hung(st)
