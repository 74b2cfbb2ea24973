"""The run itself: real child processes (the stand-in FamilyLog), real files, real signals."""

from __future__ import annotations

import asyncio
import json

import psutil
import pytest

from app.core.notices import Level
from app.core.runs.records import Outcome, RunState
from app.core.runs.runner import IN_PROGRESS
from tests.runs.conftest import Recorder, started_core
from tests.support.clock import ManualClock
from tests.support.wait import until, wait_until

WAIT = 60  # generous: the machine is shared and slow


async def test_ok_run_output_history_and_notice(make_settings, app_home) -> None:
    async with started_core(make_settings("ok", "5")) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        assert result.started
        assert core.runs.status().state is RunState.PREPARING
        record = await asyncio.wait_for(result.wait(), WAIT)

        assert record.outcome is Outcome.SUCCEEDED and record.exit_code == 0
        assert core.runs.status().state is RunState.IDLE
        # stdout and stderr, line by line, in order, to subscribers and to the file
        child = [line for line in rec.lines if line.startswith("[standin]")]
        assert child == [f"[standin] step {i}/5" for i in range(1, 6)] + ["[standin] done"]
        assert "warning on stderr" in rec.lines
        text = record.log_path.read_text()
        assert record.log_path.parent == app_home / "logs" / "runs"
        assert "[standin] step 3/5\n" in text and "warning on stderr\n" in text
        assert "Run succeeded" in text
        assert rec.states[0] == "preparing" and "running" in rec.states
        assert rec.states[-1] == "idle"
        # history on disk
        saved = json.loads((app_home / "state" / "runs.json").read_text())["runs"]
        assert saved[-1]["outcome"] == "succeeded" and saved[-1]["log_file"] == str(record.log_path)
        (notice,) = [n for n in rec.notices if "FamilyLog" in n.title]
        assert notice.level is Level.INFO and notice.log_path == record.log_path


async def test_child_env_and_cwd(make_settings, familylog_dir, port) -> None:
    settings = make_settings(
        "ok",
        LLAMA_VISION_PORT=18081,
        LLAMA_LLM_PORT=18082,
        CONNECTION_TYPE="offline",
        VISION_MODEL_GGUF="/models/qwen3-vl-8b-Q4_K_M.gguf",
        LLM_MODEL_ID="qwen3.5-27b",
        API_ENABLED=True,
        API_PORT=port,
    )
    async with started_core(settings) as core:
        env = core.runs.runner.placement.child_env()
        assert env["CONNECTION_TYPE"] == "offline"
        assert (env["LLAMA_VISION_PORT"], env["LLAMA_LLM_PORT"]) == ("18081", "18082")
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["VISION_MODEL_ID"] == "qwen3-vl-8b-Q4_K_M"  # the key the API answers to
        assert env["LLM_MODEL_ID"] == "qwen3.5-27b"
        assert env["FAMILYLOG_TRAY_API_URL"] == f"http://127.0.0.1:{port}"
        seen: dict[str, str] = {}

        def spy(lines: list[str]) -> None:
            pid = core.runs.status().pid
            if pid and not seen:
                try:
                    p = psutil.Process(pid)
                    seen["cwd"] = p.cwd()
                    seen["pgid"] = str(__import__("os").getpgid(pid))
                    seen["pid"] = str(pid)
                except psutil.Error:
                    pass

        core.runs.subscribe_output(spy)
        await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert seen["cwd"] == str(familylog_dir)
        assert seen["pgid"] == seen["pid"]  # its own process group


async def test_non_zero_exit_is_a_failure_with_last_lines(make_settings) -> None:
    async with started_core(make_settings("fail", "3")) as core:
        rec = Recorder(core)
        record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert record.outcome is Outcome.FAILED and record.exit_code == 3
        assert record.cli_exit_code() == 3
        (notice,) = [n for n in rec.notices if "FamilyLog" in n.title]
        assert notice.level is Level.ERROR
        assert "Exit code 3" in notice.text and "failed on purpose" in notice.text
        assert core.runs.recent_runs(1)[0].outcome is Outcome.FAILED


async def test_second_start_during_a_run_starts_nothing(make_settings) -> None:
    async with started_core(make_settings("hang")) as core:
        rec = Recorder(core)
        first = core.runs.process_now()
        await asyncio.wait_for(rec.seen("hanging").wait(), WAIT)
        children = psutil.Process().children(recursive=True)
        second = core.runs.process_now()
        assert not second.started and second.task is None
        assert second.message.startswith(IN_PROGRESS)
        assert psutil.Process().children(recursive=True) == children
        assert core.runs.cancel()
        record = await asyncio.wait_for(first.wait(), WAIT)
        assert record.outcome is Outcome.CANCELLED
        assert len(core.runs.recent_runs()) == 1


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_cancel_stops_the_whole_group(make_settings, monkeypatch, ignore_term) -> None:
    monkeypatch.setenv("IGNORE_TERM", "1" if ignore_term else "0")
    async with started_core(make_settings("hang"), kill_after=0.5) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        await asyncio.wait_for(rec.seen("grandchild").wait(), WAIT)
        line = next(x for x in rec.lines if "grandchild" in x)
        pid, grandchild = int(line.split()[2]), int(line.split()[4])
        assert core.runs.cancel()
        record = await asyncio.wait_for(result.wait(), WAIT)
        assert record.outcome is Outcome.CANCELLED
        assert record.exit_code == (-9 if ignore_term else -15)
        assert record.cli_exit_code() == 130
        for p in (pid, grandchild):
            assert wait_until(lambda p=p: not _alive(p), 10), f"PID {p} survived the cancel"
        assert "Run cancelled" in record.log_path.read_text()
        assert any(n.title == "FamilyLog run cancelled" for n in rec.notices)
        assert core.runs.status().state is RunState.IDLE
        assert not core.runs.cancel()  # nothing left to cancel


async def test_sigkill_comes_10_s_after_sigterm_by_default(make_settings, monkeypatch) -> None:
    """Cancel sends SIGTERM to the run's group and SIGKILL 10 s later: the default grace,
    on a clock the test moves (a run that ignores SIGTERM lives until the 10 s are up)."""
    monkeypatch.setenv("IGNORE_TERM", "1")
    clock = ManualClock()
    async with started_core(make_settings("hang"), clock=clock) as core:  # no kill_after
        rec = Recorder(core)
        result = core.runs.process_now()
        await asyncio.wait_for(rec.seen("grandchild").wait(), WAIT)
        pid = int(next(x for x in rec.lines if "grandchild" in x).split()[2])
        cancelled_at = clock.monotonic()
        assert core.runs.cancel()
        await until(lambda: clock.waits_until(cancelled_at + 10, "timeout"))
        clock.advance(9.999)
        assert clock.waits_until(cancelled_at + 10, "timeout") and _alive(pid)
        assert core.runs.status().busy
        clock.advance(0.001)
        record = await asyncio.wait_for(result.wait(), WAIT)
        assert record.outcome is Outcome.CANCELLED and record.exit_code == -9
        assert wait_until(lambda: not _alive(pid), 10)
        assert ("timeout", 10.0) in clock.asked


async def test_timeout(make_settings) -> None:
    settings = make_settings("hang", RUN_TIMEOUT_MINUTES=0.02)  # 1.2 s
    async with started_core(settings, kill_after=1.0) as core:
        rec = Recorder(core)
        record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert record.outcome is Outcome.TIMED_OUT
        assert record.cli_exit_code() == 124
        (notice,) = [n for n in rec.notices if "FamilyLog" in n.title]
        assert notice.level is Level.ERROR and "RUN_TIMEOUT_MINUTES" in notice.text
        assert core.runs.recent_runs(1)[0].outcome is Outcome.TIMED_OUT


async def test_non_utf8_output(make_settings) -> None:
    async with started_core(make_settings("binary")) as core:
        rec = Recorder(core)
        record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert record.outcome is Outcome.SUCCEEDED
        assert "latin-1 caf\ufffd" in rec.lines
        assert "utf-8 привет" in rec.lines
        assert "progress 100%" in rec.lines  # carriage returns: the last state only
        assert "no newline at the end" in rec.lines
        text = record.log_path.read_bytes().decode("utf-8")  # the log is valid UTF-8
        assert "broken \ufffd\ufffd utf-8" in text


async def test_flood_of_100_mb_keeps_memory_bounded(make_settings) -> None:
    me = psutil.Process()
    async with started_core(make_settings("flood", "100")) as core:
        rec_batches = [0]
        lines = [0]
        peak = [me.memory_info().rss]
        base = peak[0]

        def count(batch: list[str]) -> None:
            rec_batches[0] += 1
            lines[0] += len(batch)
            if rec_batches[0] % 50 == 0:
                peak[0] = max(peak[0], me.memory_info().rss)

        core.runs.subscribe_output(count)
        record = await asyncio.wait_for(core.runs.process_now().wait(), 300)
        peak[0] = max(peak[0], me.memory_info().rss)
        assert record.outcome is Outcome.SUCCEEDED
        assert lines[0] >= 1_000_001
        assert rec_batches[0] < lines[0] / 100  # batched, not one call per line
        assert record.log_path.stat().st_size > 100_000_000
        growth = (peak[0] - base) / 2**20
        assert growth < 64, f"RSS grew by {growth:.0f} MiB while reading 100 MB"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_cancel_while_a_preload_is_loading(make_settings, tmp_path, tiny_model, port2):
    """A model that never becomes ready (a stand-in server: a real one cannot be made to
    hang on cue): cancel stops the load, nothing is started, the run is recorded."""
    from tests.support.fakes import never_ready_server

    server = never_ready_server(tmp_path / "llama-server")
    settings = make_settings(
        "ok",
        LLAMA_SERVER_PATH=str(server),
        LLM_MODEL_GGUF=str(tiny_model),
        LLAMA_LLM_PORT=port2,
        RUN_PRELOAD="llm",
    )
    async with started_core(settings) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        await asyncio.wait_for(rec.seen("Loading the LLM model").wait(), WAIT)
        await until(lambda: core.manager.status(port2).pid is not None, 60)
        assert core.runs.status().state is RunState.PREPARING
        assert core.runs.cancel()
        record = await asyncio.wait_for(result.wait(), WAIT)
        assert record.outcome is Outcome.CANCELLED and record.exit_code is None
        assert not any(line.startswith("[standin]") for line in rec.lines)
        assert core.manager.get_loaded_models() == {}
        assert core.runs.status().state is RunState.IDLE
