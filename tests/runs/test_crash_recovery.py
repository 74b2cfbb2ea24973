"""Runs survive the app's death: the run is in the history from its start, and the next
start reaps what is left of it and records it as interrupted by an app crash, with its log.

The app is a real ``familylog-tray --process-now`` process, SIGKILLed mid-run; the run is a
real shell with a background job and one in a session of its own (both outlive the app)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import time

import psutil

from app.core.notices import Level
from app.core.runs.records import Outcome
from tests.runs.conftest import started_core
from tests.support.app import run_app

GRACE = 1.0
BOUND = GRACE + 1.0 + 4.0  # the design's bound, and room for a busy machine


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_run_the_app_died_in_is_reaped_and_recorded_at_the_next_start(
    make_settings, familylog_dir, app_home
) -> None:
    script = 'sleep 60 & a=$!; setsid sleep 61 & echo "children $a $!"; sleep 62'
    command = shlex.join(["bash", "-c", script])
    env = {
        "FAMILYLOG_DIR": str(familylog_dir),
        "FAMILYLOG_COMMAND": command,
        "API_ENABLED": "false",
        "FAMILYLOG_TRAY_HOME": str(app_home),
    }
    app = run_app("--process-now", env=env)
    children: list[int] = []
    try:
        for line in app.stdout:
            if m := re.match(r"children (\d+) (\d+)$", line.strip()):
                children = [int(m[1]), int(m[2])]
                break
        assert children, app.stderr.read()
        saved = json.loads((app_home / "state" / "runs.json").read_text())["runs"]
        assert [r["outcome"] for r in saved] == ["running"]
        assert saved[0]["processes"]["app_pid"] == app.pid
        os.kill(app.pid, signal.SIGKILL)
        app.wait(30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    try:
        assert all(_alive(p) for p in children), "the run's children died with the app"
        settings = make_settings(FAMILYLOG_COMMAND=command)
        t0 = time.monotonic()
        async with started_core(settings, kill_after=GRACE) as core:
            took = time.monotonic() - t0
            (record,) = core.runs.recent_runs()
            assert record.outcome is Outcome.INTERRUPTED
            assert record.message.startswith("interrupted by an app crash")
            assert "2 of its processes were still running" in record.message
            for pid in children:
                assert f"PID {pid}" in record.message
            assert record.processes is None
            assert took < BOUND + 5, f"the start took {took:.1f} s"  # the core's own start too
            note = [n for n in core.notices.history if n.title == "FamilyLog run interrupted"]
            assert note and note[0].level is Level.WARNING and note[0].log_path == record.log_path
            log_text = record.log_path.read_text()
            assert "children" in log_text  # its output up to the crash is kept
            assert "interrupted by an app crash" in log_text
        for pid in children:
            assert not _alive(pid), f"PID {pid} of the interrupted run survived the next start"
        saved = json.loads((app_home / "state" / "runs.json").read_text())["runs"]
        assert [r["outcome"] for r in saved] == ["interrupted"]
    finally:
        for pid in children:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


async def test_a_run_recorded_by_a_live_app_is_left_alone(make_settings, app_home) -> None:
    """Defence in depth: a running record whose app still runs is not this start's to reap."""
    from app.core.runs.history import RunHistory
    from app.core.runs.records import RunProcesses, RunRecord

    other = psutil.Process(os.getppid())  # alive, and not this process
    history = RunHistory(app_home / "state" / "runs.json")
    history.add(
        RunRecord(
            started_at=time.time(),
            duration_s=0,
            outcome=Outcome.RUNNING,
            log_file=str(app_home / "x.log"),
            processes=RunProcesses(
                pid=other.pid,
                pgid=None,
                mark="run-none",
                since=other.create_time(),
                app_pid=other.pid,
                app_started=other.create_time(),
            ),
        )
    )
    async with started_core(make_settings("ok"), kill_after=GRACE) as core:
        assert [r.outcome for r in core.runs.recent_runs()] == [Outcome.RUNNING]
        assert other.is_running()
