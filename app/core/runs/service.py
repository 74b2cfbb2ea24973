"""The runs service on the core (``core.runs``): the runner, the history and the schedule.

Attached by ``build_core``, so the schedule runs in the tray and in ``--headless`` alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from app.core.clock import Clock, SystemClock
from app.core.notices import Level, Notice
from app.core.runs.deps import RunDeps
from app.core.runs.history import RunHistory
from app.core.runs.records import RunRecord, RunStatus, StartResult
from app.core.runs.recovery import recover_interrupted
from app.core.runs.runner import FamilyLogRunner
from app.core.runs.schedule import Scheduler
from app.platform.processes import ProcessPlatform


class RunService:
    def __init__(
        self,
        deps: RunDeps,
        *,
        schedule: bool = True,
        clock: Clock | None = None,
        platform: ProcessPlatform | None = None,
        kill_after: float | None = None,
        base_env: dict[str, str] | None = None,
    ) -> None:
        self.deps = deps
        self._schedule = schedule
        self.history = RunHistory(deps.history_file)
        clock = clock or SystemClock()
        self.runner = FamilyLogRunner(
            deps,
            self.history,
            platform=platform,
            kill_after=kill_after,
            base_env=base_env,
            clock=clock,
        )
        # RUN_SCHEDULE and RUN_CATCH_UP_HOURS as set now, each time the scheduler looks
        self.scheduler = Scheduler(
            (lambda: deps.settings().schedule_times) if schedule else list,
            self.process_now,
            catch_up_hours=lambda: deps.settings().RUN_CATCH_UP_HOURS,
            last_run_started=self.history.last_started_at,
            clock=clock,
        )

    # ── Service protocol ──────────────────────────────────────────────────────
    async def start(self) -> None:
        if self.history.problem:
            self.deps.notices.emit(
                Notice(Level.WARNING, "Run history", self.history.problem, self.history.path)
            )
        # runs an app crash left: reaped and recorded before any new run starts
        await recover_interrupted(self.history, self.deps.notices, self.runner.grace)
        if self._schedule:
            self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.runner.close()

    # ── For the tray, the log window and the single-instance handler ─────────
    def process_now(self, trigger: str = "manual") -> StartResult:
        return self.runner.start(trigger)

    def cancel(self) -> bool:
        return self.runner.cancel()

    async def wait(self) -> RunRecord | None:
        return await self.runner.wait()

    def status(self) -> RunStatus:
        return self.runner.status()

    def subscribe_output(self, cb: Callable[[list[str]], object]) -> Callable[[], None]:
        return self.runner.subscribe_output(cb)

    def subscribe_state(self, cb: Callable[[RunStatus], object]) -> Callable[[], None]:
        return self.runner.subscribe_state(cb)

    def next_run(self) -> dt.datetime | None:
        return self.scheduler.next_run()

    def recent_runs(self, n: int = 10) -> list[RunRecord]:
        return self.history.recent(n)

    def familylog_server_logs(self) -> list[Path]:
        return self.runner.familylog_server_logs()
