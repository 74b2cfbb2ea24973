"""A run ends when its main process ends: what it left behind is stopped, whatever it does.

Real shells and real processes: a background job that outlives the main process (as
``uv`` leaves ``python``), one that ignores SIGTERM, one that moved to a session of its own.
The grace period between SIGTERM and SIGKILL runs on a clock the test moves
(``tests.support.clock``), so each test checks what happens inside it and after it (who is
still alive, who was killed) instead of how long a busy machine took. The only real-time
limit is a hang guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import time
from collections.abc import AsyncIterator

import psutil
import pytest

from app.config import Settings
from app.core.app_core import AppCore
from app.core.runs.records import Outcome, RunRecord, RunState, StartResult
from tests.runs.conftest import Recorder, started_core
from tests.support.clock import ManualClock
from tests.support.wait import until

# a value of its own, so the stop's wait is told apart from any other on the clock
GRACE = 7.25
# the hang guard: far more than any of these runs needs, far less than its processes last
WAIT = 60


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def shell(script: str) -> str:
    return shlex.join(["bash", "-c", script])


async def _pids(rec: Recorder, tag: str, n: int = 1) -> list[int]:
    """The PIDs the script printed as ``<tag> <pid>``."""
    printed = re.compile(rf"{tag}( \d+)+$")  # not the command line the log shows first
    await until(lambda: any(printed.match(x) for x in rec.lines), WAIT)
    line = next(x for x in rec.lines if printed.match(x))
    return [int(x) for x in re.findall(r"\d+", line)][:n]


async def _finished(result: StartResult, what: str) -> RunRecord:
    """The run's record; a clear failure (not a hang) when the run never ends."""
    try:
        assert result.task is not None, result.message
        return await asyncio.wait_for(asyncio.shield(result.task), WAIT)
    except TimeoutError:
        pytest.fail(f"hang guard: the run had not ended {WAIT} s after {what}")


async def _grace_started(clock: ManualClock, result: StartResult) -> None:
    """Wait until the stop waits out the grace period (SIGTERM is sent before it waits)."""
    task = result.task
    assert task is not None, result.message

    def waiting() -> bool:
        return clock.waits_until(clock.monotonic() + GRACE, "timeout")

    await until(lambda: waiting() or task.done(), WAIT)
    assert not task.done(), "the run ended without waiting out the grace period"


async def _keep_moving(clock: ManualClock) -> None:
    while True:
        clock.advance(GRACE)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def core_on(settings: Settings, clock: ManualClock) -> AsyncIterator[AppCore]:
    """A started core whose runs stop on ``clock``. Its time moves only when the test moves
    it, and without end while the core stops, so a failed test does not hang in the stop."""
    core_cm = started_core(settings, kill_after=GRACE, clock=clock)
    core = await core_cm.__aenter__()
    try:
        yield core
    finally:
        mover = asyncio.create_task(_keep_moving(clock))
        try:
            await core_cm.__aexit__(None, None, None)
        finally:
            mover.cancel()


async def test_a_background_job_does_not_keep_the_run_going(make_settings) -> None:
    """The issue's ``bash -c "sleep 25 & echo done; exit 0"`` with a job that never ends by
    itself: the run ends anyway, the job is stopped by SIGTERM (the grace period's clock is
    never moved, so nothing waited it out) and the record says so."""
    settings = make_settings(FAMILYLOG_COMMAND=shell('sleep 600 & echo "child $!"; exit 0'))
    clock = ManualClock()
    async with core_on(settings, clock) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        (child,) = await _pids(rec, "child")
        record = await _finished(result, "its main process exited")
        assert record.outcome is Outcome.SUCCEEDED and record.exit_code == 0
        assert "left 1 process behind" in record.message and "stopped it" in record.message
        assert "SIGKILL" not in record.message
        assert f"PID {child}" in record.message
        assert not _alive(child)
        text = record.log_path.read_text()
        assert "left 1 process behind" in text
        assert core.runs.status().state is RunState.IDLE


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(
    make_settings,
) -> None:
    """The child lives through SIGTERM and the whole grace period, and is killed the moment
    the period is over."""
    script = "trap '' TERM; sleep 600 & echo \"child $!\"; exit 3"
    clock = ManualClock()
    async with core_on(make_settings(FAMILYLOG_COMMAND=shell(script)), clock) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        (child,) = await _pids(rec, "child")
        await _grace_started(clock, result)
        clock.advance(GRACE - 0.001)
        assert clock.waits_until(clock.monotonic() + 0.001, "timeout")
        assert _alive(child), "killed before the grace period was over"
        assert core.runs.status().busy and result.task is not None and not result.task.done()
        clock.advance(0.001)
        record = await _finished(result, "the grace period")
        assert record.outcome is Outcome.FAILED and record.exit_code == 3
        assert "exit code 3" in record.message and "left 1 process behind" in record.message
        assert "SIGKILL after the grace period" in record.message
        assert not _alive(child)
        assert ("timeout", GRACE) in clock.asked


async def test_a_grandchild_in_a_session_of_its_own_is_found(make_settings) -> None:
    """``setsid`` takes it out of the run's process group; the mark in its environment (and
    on Linux the subreaper) still makes it the run's."""
    # an argument of its own: other programs on this machine may run a "sleep 60" too
    script = 'setsid sleep 60.26 & echo "child $!"; sleep 0.2; exit 0'
    async with core_on(make_settings(FAMILYLOG_COMMAND=shell(script)), ManualClock()) as core:
        rec = Recorder(core)
        t0 = time.time()
        result = core.runs.process_now()
        (child,) = await _pids(rec, "child")
        record = await _finished(result, "its main process exited")
        assert record.outcome is Outcome.SUCCEEDED
        assert "left 1 process behind" in record.message and "sleep" in record.message
        left = [
            p
            for p in psutil.process_iter(["cmdline", "create_time"])
            if p.info["cmdline"] == ["sleep", "60.26"]
            and p.info["create_time"] >= t0 - 1
            and _alive(p.pid)
        ]
        assert not left, left
        assert not _alive(child)


@pytest.mark.parametrize("how", ["cancel", "timeout", "quit"])
async def test_cancel_timeout_and_quit_kill_after_the_grace_period(make_settings, how) -> None:
    """The main process and a child both ignore SIGTERM: each way of stopping the run
    signals them, waits out the grace period (both still alive until its end), then kills
    both, and nothing of the run is left."""
    script = "trap '' TERM; sleep 600 & echo \"child $! $$\"; wait"
    extra = {"RUN_TIMEOUT_MINUTES": 0.05} if how == "timeout" else {}  # 3 s
    settings = make_settings(FAMILYLOG_COMMAND=shell(script), **extra)
    clock = ManualClock()
    async with core_on(settings, clock) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        child, main = await _pids(rec, "child", 2)
        quitting = None
        if how == "cancel":
            assert core.runs.cancel()
        elif how == "quit":
            quitting = asyncio.create_task(core.stop())
        # "timeout": the run's own timer (real time) starts the stop
        await _grace_started(clock, result)
        clock.advance(GRACE - 0.001)
        assert _alive(child) and _alive(main), "killed before the grace period was over"
        assert result.task is not None and not result.task.done()
        clock.advance(0.001)
        if quitting is not None:
            try:
                await asyncio.wait_for(quitting, WAIT)
            except TimeoutError:
                pytest.fail(f"hang guard: quitting had not ended {WAIT} s after the grace")
            record = core.runs.recent_runs(1)[0]
        else:
            record = await _finished(result, f"the {how} and its grace period")
        expected = {
            "cancel": Outcome.CANCELLED,
            "timeout": Outcome.TIMED_OUT,
            "quit": Outcome.CANCELLED,
        }
        assert record.outcome is expected[how]
        assert record.exit_code == -9  # SIGTERM was ignored: killed after the grace period
        assert not _alive(child) and not _alive(main)
        assert ("timeout", GRACE) in clock.asked


async def test_history_has_the_run_while_it_runs(make_settings) -> None:
    async with core_on(make_settings("hang"), ManualClock()) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        await asyncio.wait_for(rec.seen("hanging").wait(), WAIT)
        (entry,) = core.runs.history.records
        assert entry.outcome is Outcome.RUNNING and entry.processes is not None
        assert entry.processes.pid == core.runs.status().pid
        on_disk = type(core.runs.history)(core.runs.history.path).records
        assert [r.outcome for r in on_disk] == [Outcome.RUNNING]
        core.runs.cancel()
        record = await _finished(result, "the cancel")
        (entry,) = core.runs.history.records
        assert entry == record and entry.processes is None
