"""Bad input ends in a clear notice and a history entry, never a stuck state or a lost log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core.notices import Level
from app.core.runs.records import Outcome, RunState
from tests.runs.conftest import Recorder, started_core


def _missing_dir(tmp: Path) -> dict:
    return {"FAMILYLOG_DIR": str(tmp / "nope")}


def _dir_is_a_file(tmp: Path) -> dict:
    f = tmp / "a-file"
    f.write_text("x")
    return {"FAMILYLOG_DIR": str(f)}


def _unset_dir(tmp: Path) -> dict:
    return {"FAMILYLOG_DIR": ""}


def _command_not_found(tmp: Path) -> dict:
    return {"FAMILYLOG_COMMAND": "no-such-program-flt run.py"}


def _relative_command_missing(tmp: Path) -> dict:
    return {"FAMILYLOG_COMMAND": "./bin/run.sh"}


def _command_not_executable(tmp: Path) -> dict:
    return {"FAMILYLOG_COMMAND": str(Path(__file__))}


def _preload_model_missing(tmp: Path) -> dict:
    return {"RUN_PRELOAD": "llm", "LLM_MODEL_GGUF": str(tmp / "missing.gguf")}


def _preload_model_unset(tmp: Path) -> dict:
    return {"RUN_PRELOAD": "vision"}


# (settings, what the message says, what --process-now exits with: 127 only when the
# command is not there, as a shell answers; every other refusal is 1)
CASES = {
    "missing dir": (_missing_dir, "does not exist", 1),
    "dir is a file": (_dir_is_a_file, "is a file, not a folder", 1),
    "dir not set": (_unset_dir, "FAMILYLOG_DIR is not set", 1),
    "command not found": (_command_not_found, "Command not found: 'no-such-program-flt'", 127),
    "relative command missing": (
        _relative_command_missing,
        "Command not found: './bin/run.sh'",
        127,
    ),
    "not executable": (_command_not_executable, "Cannot start", 1),
    "preload model missing": (_preload_model_missing, "Model file not found", 1),
    "preload model unset": (_preload_model_unset, "VISION_MODEL_GGUF", 1),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_reported_and_recorded(case, make_settings, tmp_path) -> None:
    make, expected, code = CASES[case]
    async with started_core(make_settings("ok", **make(tmp_path))) as core:
        rec = Recorder(core)
        result = core.runs.process_now()
        assert result.started
        record = await asyncio.wait_for(result.wait(), 60)

        assert record.outcome is Outcome.NOT_STARTED
        assert expected in record.message
        assert record.cli_exit_code() == code
        assert core.runs.status().state is RunState.IDLE
        (notice,) = [n for n in rec.notices if n.title == "FamilyLog run not started"]
        assert notice.level is Level.ERROR and expected in notice.text
        assert notice.log_path == record.log_path
        assert expected in record.log_path.read_text()  # the run's log is not lost
        assert core.runs.recent_runs(1) == [record]
        assert not any("[standin]" in line for line in rec.lines)
        # the next run can start: nothing is stuck
        again = core.runs.process_now()
        assert again.started
        await asyncio.wait_for(again.wait(), 60)
