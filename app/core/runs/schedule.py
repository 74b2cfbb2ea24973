"""The daily schedule (``RUN_SCHEDULE``) and the catch-up of a missed run.

The clock is injected (``Clock``: wall time, monotonic time, sleep), so tests move time
by hand and never wait. The loop sleeps at most ``max_step`` seconds at a time and then
looks at the wall clock, so a slot that passed while the computer slept (a missed
deadline, or a jump between the wall and the monotonic clock, which stops in suspend) is
noticed on wake. A slot missed by less than ``RUN_CATCH_UP_HOURS`` is run once, at the
next start or wake; older ones are skipped and logged. A slot due while a run is in
progress is skipped and logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.core.clock import Clock, SystemClock
from app.core.runs.records import StartResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fired:
    """What one check of the schedule did, for tests and the log."""

    slot: dt.datetime
    trigger: str  # "schedule" or "catch-up"
    result: StartResult | None  # None when skipped as too old


def slots_between(times: list[tuple[int, int]], after: dt.datetime, upto: dt.datetime):
    """The scheduled datetimes in ``(after, upto]``, oldest first."""
    out = []
    day = after.date()
    while day <= upto.date():
        for hh, mm in times:
            t = dt.datetime.combine(day, dt.time(hh, mm))
            if after < t <= upto:
                out.append(t)
        day += dt.timedelta(days=1)
    return out


class Scheduler:
    """``times`` and ``catch_up_hours`` are asked each time they are used, so a change of
    ``RUN_SCHEDULE`` or ``RUN_CATCH_UP_HOURS`` applies at once (within ``max_step``)."""

    def __init__(
        self,
        times: Callable[[], list[tuple[int, int]]],
        trigger: Callable[[str], StartResult],
        *,
        catch_up_hours: Callable[[], float] = lambda: 12.0,
        last_run_started: Callable[[], float | None] = lambda: None,
        clock: Clock | None = None,
        max_step: float = 60.0,
        on_time: float = 90.0,
        wake_jump: float = 120.0,
    ) -> None:
        self._times = times
        self._seen_times: list[tuple[int, int]] | None = None
        self._trigger = trigger
        self._catch_up_hours = catch_up_hours
        self._last_run_started = last_run_started
        self.clock = clock or SystemClock()
        self._max_step = max_step
        self._on_time = dt.timedelta(seconds=on_time)
        self._wake_jump = wake_jump
        self._checked: dt.datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self.fired: list[Fired] = []

    @property
    def times(self) -> list[tuple[int, int]]:
        """The times of day of the schedule in force."""
        return sorted(set(self._times()))

    @property
    def catch_up(self) -> dt.timedelta:
        """How late a missed slot may still run (RUN_CATCH_UP_HOURS as set now)."""
        return dt.timedelta(hours=self._catch_up_hours())

    # ── For the tray ──────────────────────────────────────────────────────────
    def next_run(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """The next scheduled run after ``now``; None without a schedule."""
        if not self.times:
            return None
        now = now or self.clock.now()
        return slots_between(self.times, now, now + dt.timedelta(days=1, minutes=1))[0]

    # ── Life cycle ────────────────────────────────────────────────────────────
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="run-schedule")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        self.check_at_start()
        while True:
            now = self.clock.now()
            nxt = self.next_run(now)  # None: no schedule now; look again after max_step
            wait = self._max_step if nxt is None else (nxt - now).total_seconds()
            wait = min(self._max_step, max(0.0, wait))
            wall0, mono0 = time_of(now), self.clock.monotonic()
            await self.clock.sleep(wait)
            now = self.clock.now()
            jump = (time_of(now) - wall0) - (self.clock.monotonic() - mono0)
            if abs(jump) > self._wake_jump:
                log.info("The clock jumped %.0f s (sleep or a clock change); checking", jump)
            self.check(now)

    # ── The checks (called by the loop; tests call them directly) ─────────────
    def check_at_start(self, now: dt.datetime | None = None) -> Fired | None:
        """At start: catch up the latest slot missed while the app was not running."""
        now = now or self.clock.now()
        self._checked = now
        times = self._seen_times = self.times
        if not times:
            return None
        missed = slots_between(times, now - self.catch_up, now)
        if not missed:
            return None
        slot = missed[-1]
        last = self._last_run_started()
        if last is not None and dt.datetime.fromtimestamp(last) >= slot:
            return None  # a run (of any kind) has already happened since that slot
        return self._fire(slot, "catch-up", now)

    def check(self, now: dt.datetime | None = None) -> Fired | None:
        """Fire the latest slot passed since the previous check, once."""
        now = now or self.clock.now()
        since, self._checked = self._checked or now, now
        times = self.times
        if self._seen_times is not None and times != self._seen_times:
            log.info("The schedule is now %s", ", ".join(f"{h:02d}:{m:02d}" for h, m in times))
            since = now  # a slot set after it passed is not due
        self._seen_times = times
        due = slots_between(times, since, now)
        if not due:
            return None
        slot = due[-1]
        if len(due) > 1:
            log.info("%d scheduled runs were missed; only the one at %s counts", len(due), slot)
        late = now - slot
        if late <= self._on_time:
            return self._fire(slot, "schedule", now)
        if late < self.catch_up:
            return self._fire(slot, "catch-up", now)
        log.warning(
            "The run scheduled at %s was missed by %s (more than RUN_CATCH_UP_HOURS); skipped",
            slot,
            late,
        )
        f = Fired(slot, "catch-up", None)
        self.fired.append(f)
        return f

    def _fire(self, slot: dt.datetime, trigger: str, now: dt.datetime) -> Fired:
        result = self._trigger(trigger)
        if result.started:
            log.info("Started the %s run for %s", trigger, slot.strftime("%Y-%m-%d %H:%M"))
        else:
            log.warning("Skipped the %s run for %s: %s", trigger, slot, result.message)
        f = Fired(slot, trigger, result)
        self.fired.append(f)
        return f


def time_of(d: dt.datetime) -> float:
    return d.timestamp()
