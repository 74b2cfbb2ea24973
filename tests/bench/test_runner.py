"""The benchmark's figures (app/core/bench/runner.py): medians and spread per server and
prompt, the plain-text table, and the files a run leaves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from app.core.bench.runner import Measurement, save_results, summarize, table_text


def run(server: str, prompt: str, n: int, gen: float | None, ttft: float) -> Measurement:
    return Measurement(
        server=server,
        model="m",
        prompt=prompt,
        run=n,
        prompt_tokens=40,
        tokens=48,
        prompt_tokens_per_second=100.0 + n,
        generation_tokens_per_second=gen,
        time_to_first_token_ms=ttft,
        total_ms=ttft * 10,
        source="server",
    )


MEASURED = [
    run("app", "short chat", 1, 30.0, 50.0),
    run("other", "short chat", 1, 20.0, 80.0),
    run("app", "short chat", 2, 34.0, 70.0),
    run("app", "short chat", 3, 31.0, 60.0),
    run("other", "short chat", 2, None, 80.0),
]


def test_medians_and_spread_per_server_and_prompt() -> None:
    rows = summarize(MEASURED)
    assert [(r.server, r.prompt, r.runs) for r in rows] == [
        ("app", "short chat", 3),
        ("other", "short chat", 2),
    ]
    app, other = rows
    assert app.generation_tokens_per_second == 31.0
    assert app.spread["generation_tokens_per_second"] == (30.0, 34.0)
    assert app.time_to_first_token_ms == 60.0 and app.total_ms == 600.0
    # a run without a figure is left out of that figure only
    assert other.generation_tokens_per_second == 20.0
    assert other.spread["generation_tokens_per_second"] == (20.0, 20.0)
    assert other.time_to_first_token_ms == 80.0


def test_the_table_shows_medians_with_their_range() -> None:
    text = table_text(summarize(MEASURED))
    head, rule, app, other = text.splitlines()
    assert head.split() == ["server", "prompt", "prompt", "t/s", "generation", "t/s", "first", "token", "ms", "total", "ms"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert app.startswith("app (m) ") and "  short chat  " in app
    assert "31.0 (30.0–34.0)" in app and "60.0 (50.0–70.0)" in app
    # one value, no range
    assert "20.0" in other and "(20.0–20.0)" not in other
    # the figures are right-aligned under their heads
    assert len({len(line) for line in (head, rule, app, other)}) == 1


def test_a_run_leaves_a_json_summary_and_a_csv_of_every_run(tmp_path: Path) -> None:
    rows = summarize(MEASURED)
    json_path, csv_path = save_results(tmp_path / "bench", rows, MEASURED, stamp="x")
    assert (json_path.name, csv_path.name) == ("benchmark-x.json", "benchmark-x.csv")
    data = json.loads(json_path.read_text())
    assert [r["server"] for r in data["results"]] == ["app", "other"]
    assert data["results"][0]["spread"]["generation_tokens_per_second"] == [30.0, 34.0]
    assert len(data["measurements"]) == len(MEASURED)
    with csv_path.open(newline="") as f:
        lines = list(csv.DictReader(f))
    assert [line["server"] for line in lines] == [m.server for m in MEASURED]
    assert lines[4]["generation_tokens_per_second"] == ""
