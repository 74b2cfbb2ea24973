"""The daily schedule and the catch-up, with an injected clock: no test waits for real time."""

from __future__ import annotations

import asyncio
import datetime as dt

from app.core.runs.records import Outcome, StartResult
from app.core.runs.schedule import Scheduler, slots_between
from tests.runs.conftest import Recorder, started_core
from tests.support.app import AS_APP, make_core

T = dt.datetime


class FakeClock:
    """Wall and monotonic time that move only when told; ``sleep`` advances both."""

    def __init__(self, now: dt.datetime, stop_at: dt.datetime | None = None) -> None:
        self.wall = now
        self.stop_at = stop_at  # time stands still from here: sleep waits forever
        self.mono = 1000.0
        self.sleeps: list[float] = []
        self.suspend_at: dt.datetime | None = None  # first sleep past this loses hours
        self.suspend_for = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        if self.stop_at is not None and self.wall >= self.stop_at:
            await asyncio.Event().wait()
        self.sleeps.append(seconds)
        self.wall += dt.timedelta(seconds=seconds)
        self.mono += seconds
        if self.suspend_at is not None and self.wall >= self.suspend_at:
            self.wall += self.suspend_for  # the monotonic clock stops in suspend
            self.suspend_at = None
        await asyncio.sleep(0)


class Trigger:
    def __init__(self, started: bool = True) -> None:
        self.calls: list[str] = []
        self.started = started
        self.event = asyncio.Event()

    def __call__(self, trigger: str) -> StartResult:
        self.calls.append(trigger)
        self.event.set()
        msg = "started" if self.started else "A FamilyLog run is already in progress"
        return StartResult(self.started, msg)


def sched(now, times=((3, 0),), last=None, catch_up=12.0, trigger=None):
    clock = FakeClock(now)
    trigger = trigger or Trigger()
    s = Scheduler(
        lambda: list(times),
        trigger,
        catch_up_hours=lambda: catch_up,
        last_run_started=lambda: last,
        clock=clock,
    )
    return s, clock, trigger


def test_slots_and_next_run() -> None:
    times = [(3, 0), (14, 30)]
    got = slots_between(times, T(2026, 1, 1, 3, 0), T(2026, 1, 2, 3, 0))
    assert got == [T(2026, 1, 1, 14, 30), T(2026, 1, 2, 3, 0)]
    s, _, _ = sched(T(2026, 1, 1, 10, 0), times)
    assert s.next_run() == T(2026, 1, 1, 14, 30)
    assert s.next_run(T(2026, 1, 1, 23, 59)) == T(2026, 1, 2, 3, 0)
    assert s.next_run(T(2026, 1, 1, 14, 30)) == T(2026, 1, 2, 3, 0)
    empty, _, _ = sched(T(2026, 1, 1), times=())
    assert empty.next_run() is None


def test_catch_up_at_start_within_the_window() -> None:
    s, _, trig = sched(T(2026, 1, 1, 9, 0))  # 03:00 was missed by 6 h < 12 h
    fired = s.check_at_start()
    assert fired and fired.trigger == "catch-up" and fired.slot == T(2026, 1, 1, 3, 0)
    assert trig.calls == ["catch-up"]
    assert s.check() is None  # once only


def test_no_catch_up_when_missed_too_long_ago() -> None:
    s, _, trig = sched(T(2026, 1, 1, 16, 0))  # missed by 13 h
    assert s.check_at_start() is None and trig.calls == []


def test_no_catch_up_when_a_run_happened_since() -> None:
    after_slot = T(2026, 1, 1, 4, 0).timestamp()
    s, _, trig = sched(T(2026, 1, 1, 9, 0), last=after_slot)
    assert s.check_at_start() is None and trig.calls == []
    before_slot = T(2026, 1, 1, 2, 0).timestamp()
    s, _, trig = sched(T(2026, 1, 1, 9, 0), last=before_slot)
    assert s.check_at_start() is not None and trig.calls == ["catch-up"]


def test_on_time_and_missed_deadlines() -> None:
    s, clock, trig = sched(T(2026, 1, 1, 2, 59))
    s.check_at_start()
    assert s.check(T(2026, 1, 1, 3, 0, 30)).trigger == "schedule"
    # asleep from 02:00 to 08:00 the next day: one catch-up, not one per missed slot
    s.check(T(2026, 1, 2, 2, 0))
    fired = s.check(T(2026, 1, 2, 8, 0))
    assert fired.trigger == "catch-up" and fired.slot == T(2026, 1, 2, 3, 0)
    # asleep for two days: too old, skipped and logged
    fired = s.check(T(2026, 1, 4, 20, 0))
    assert fired.result is None
    assert trig.calls == ["schedule", "catch-up"]


def test_a_changed_schedule_applies_at_once_but_not_to_slots_already_passed() -> None:
    times = [(3, 0)]  # read by the scheduler each time it looks
    s, _, trig = sched(T(2026, 1, 1, 10, 0), times, last=T(2026, 1, 1, 3, 1).timestamp())
    assert s.check_at_start() is None  # 03:00 ran
    assert s.next_run() == T(2026, 1, 2, 3, 0)
    times[:] = [(10, 0), (11, 0)]  # RUN_SCHEDULE changed in Settings… at 10:00:30
    assert s.next_run(T(2026, 1, 1, 10, 0, 30)) == T(2026, 1, 1, 11, 0)
    assert s.check(T(2026, 1, 1, 10, 0, 30)) is None  # 10:00 was set after it passed
    assert s.check(T(2026, 1, 1, 11, 0, 10)).trigger == "schedule"
    assert trig.calls == ["schedule"]


async def test_loop_fires_on_time_with_the_injected_clock() -> None:
    s, clock, trig = sched(T(2026, 1, 1, 2, 55))
    s.start()
    try:
        await asyncio.wait_for(trig.event.wait(), 10)
    finally:
        await s.stop()
    assert trig.calls == ["schedule"]
    assert s.fired[0].slot == T(2026, 1, 1, 3, 0)
    assert max(clock.sleeps) <= 60  # it never sleeps past a possible wake-up


async def test_loop_catches_up_after_a_suspend() -> None:
    s, clock, trig = sched(T(2026, 1, 1, 1, 0))
    clock.suspend_at = T(2026, 1, 1, 2, 0)
    clock.suspend_for = dt.timedelta(hours=5)  # wakes at about 07:00
    s.start()
    try:
        await asyncio.wait_for(trig.event.wait(), 10)
    finally:
        await s.stop()
    assert trig.calls == ["catch-up"]
    assert s.fired[0].slot == T(2026, 1, 1, 3, 0)
    assert clock.wall.hour == 7


async def test_a_slot_due_during_a_run_is_skipped_and_logged(make_settings, caplog) -> None:
    clock = FakeClock(T(2026, 1, 1, 2, 59), stop_at=T(2026, 1, 1, 2, 59))
    async with started_core(make_settings("hang", RUN_SCHEDULE="03:00"), clock=clock) as core:
        rec = Recorder(core)
        running = core.runs.process_now()
        await asyncio.wait_for(rec.seen("hanging").wait(), 60)
        sch = core.runs.scheduler
        fired = sch.check(T(2026, 1, 1, 3, 0))
        assert fired is not None and not fired.result.started
        assert "already in progress" in fired.result.message
        assert "Skipped the schedule run" in caplog.text
        core.runs.cancel()
        record = await asyncio.wait_for(running.wait(), 60)
        assert record.outcome is Outcome.CANCELLED
        assert len(core.runs.recent_runs()) == 1  # the skipped slot started nothing


async def test_the_service_runs_the_schedule(make_settings) -> None:
    settings = make_settings("ok", "1", RUN_SCHEDULE="03:00,14:30")
    clock = FakeClock(T(2026, 1, 1, 2, 58), stop_at=T(2026, 1, 1, 3, 0))
    async with started_core(settings, clock=clock) as core:
        rec = Recorder(core)
        assert core.runs.scheduler.times == [(3, 0), (14, 30)]
        await asyncio.wait_for(rec.seen("[standin] done").wait(), 60)
        record = await asyncio.wait_for(core.runs.wait(), 60)
        assert record.trigger == "schedule" and record.outcome is Outcome.SUCCEEDED
        assert core.runs.next_run() == T(2026, 1, 1, 14, 30)
        assert core.runs.recent_runs() == [record]
    assert core.runs.scheduler._task is None  # stopped with the core


async def test_no_schedule_for_a_one_off_run(make_settings) -> None:
    settings = make_settings("ok", "1", RUN_SCHEDULE="03:00")
    async with started_core(settings, schedule=False) as core:
        assert core.runs.scheduler.times == [] and core.runs.next_run() is None
        assert core.runs.scheduler._task is None


def test_build_core_attaches_the_runs_service(make_settings) -> None:
    core = make_core(make_settings("ok", RUN_SCHEDULE="14:30"), **AS_APP)
    assert core.runs in core.services
    assert core.runs.scheduler.times == [(14, 30)]
    assert core.runs.next_run().time() == dt.time(14, 30)
