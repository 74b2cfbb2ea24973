"""The run history: kept across an app restart, capped, and a corrupt file handled."""

from __future__ import annotations

import asyncio
import json

from app.core.runs.history import RunHistory
from app.core.runs.records import Outcome, RunRecord
from tests.runs.conftest import Recorder, started_core


def _record(i: int) -> RunRecord:
    return RunRecord(
        started_at=1_700_000_000 + i,
        duration_s=1.5,
        outcome=Outcome.SUCCEEDED if i % 2 else Outcome.FAILED,
        exit_code=0 if i % 2 else 1,
        log_file=f"/tmp/{i}.log",
    )


async def test_history_survives_an_app_restart(make_settings, app_home) -> None:
    async with started_core(make_settings("ok", "1")) as core:
        first = await asyncio.wait_for(core.runs.process_now().wait(), 60)
    async with started_core(make_settings("fail", "5")) as core:
        assert core.runs.recent_runs() == [first]  # a new core reads the same file
        second = await asyncio.wait_for(core.runs.process_now().wait(), 60)
    reopened = RunHistory(app_home / "state" / "runs.json")
    assert reopened.recent() == [second, first]
    assert [r.exit_code for r in reopened.recent()] == [5, 0]
    assert reopened.recent()[0].log_path.is_file()


def test_only_the_last_50_are_kept(tmp_path) -> None:
    tmp_path = tmp_path / "state"
    h = RunHistory(tmp_path / "runs.json")
    for i in range(60):
        h.add(_record(i))
    again = RunHistory(tmp_path / "runs.json")
    assert len(again.records) == 50
    assert again.recent(1)[0].started_at == 1_700_000_059
    assert again.records[0].started_at == 1_700_000_010
    assert [p.name for p in tmp_path.iterdir()] == ["runs.json"]  # no temp files left


async def test_corrupt_history_is_kept_aside_and_reported(make_settings, app_home) -> None:
    path = app_home / "state" / "runs.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"runs": [{"started_at": "yesterday"')
    async with started_core(make_settings("ok", "1")) as core:
        rec = Recorder(core)
        await core.runs.start()  # reports the problem found when the core was built
        assert any(n.title == "Run history" and "unreadable" in n.text for n in rec.notices), (
            rec.notices
        )
        record = await asyncio.wait_for(core.runs.process_now().wait(), 60)
        assert core.runs.recent_runs() == [record]
    kept = list(path.parent.glob("runs.json.corrupt-*"))
    assert len(kept) == 1 and "yesterday" in kept[0].read_text()
    assert json.loads(path.read_text())["runs"][0]["outcome"] == "succeeded"


def test_wrong_shape_is_treated_as_corrupt(tmp_path) -> None:
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"runs": [{"outcome": "exploded"}]}))
    h = RunHistory(path)
    assert h.records == [] and h.problem and str(path) in h.problem
