"""The benchmark's figures (app/core/bench/results.py): medians and spread per server and
prompt, the plain-text table, and the files a run leaves; and how the runner
(app/core/bench/runner.py) fits a prompt to the model and reads a server's errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

from app.core.bench.prompts import PromptSizes, long_text, prompt_set
from app.core.bench.results import save_results, summarize, table_text
from app.core.bench.runner import (
    FIT_MARGIN,
    Measurement,
    TooLongError,
    error_text,
    fitted,
    too_long,
)


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
    assert head.split() == [
        "server",
        "prompt",
        "prompt",
        "t/s",
        "generation",
        "t/s",
        "first",
        "token",
        "ms",
        "total",
        "ms",
    ]
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


def test_a_prompt_is_shortened_to_fit_or_skipped_with_the_reason() -> None:
    long = prompt_set(PromptSizes(long_prompt_tokens=2000, short_tokens=32))[1]
    shorter = fitted(long, TooLongError("", prompt_tokens=2600, context=1024))
    assert shorter is not None and shorter.name == "long prompt"
    assert shorter.text_tokens == 2000 * (1024 - 32 - FIT_MARGIN) // 2600
    assert len(long_text(shorter.text_tokens).split()) == shorter.text_tokens
    assert shorter.messages[0]["content"].endswith(long_text(shorter.text_tokens))
    assert fitted(long, TooLongError("", prompt_tokens=2600, context=60)) is None  # no room
    short_chat = prompt_set()[0]  # nothing in it to shorten
    assert fitted(short_chat, TooLongError("", prompt_tokens=60, context=40)) is None


def test_notes_skips_and_failures_in_the_summary_and_the_table() -> None:
    shortened = replace(
        run("app", "long prompt", 1, 30.0, 50.0),
        note="shortened to 470 prompt tokens to fit the model's context",
    )
    skipped = replace(
        run("app", "short chat", 1, None, 0.0),
        error="skipped: it needs 600 tokens and the model's context holds 512",
    )
    failed = replace(run("other", "image", 1, None, 0.0), error="failed: other answered 500: no")
    rows = {(r.server, r.prompt): r for r in summarize([shortened, skipped, failed])}
    assert rows[("app", "long prompt")].note.startswith("shortened to 470")
    assert not rows[("app", "long prompt")].failed and rows[("app", "long prompt")].runs == 1
    skip = rows[("app", "short chat")]
    assert skip.runs == 0 and not skip.failed and skip.note.startswith("skipped: it needs 600")
    fail = rows[("other", "image")]
    assert fail.runs == 0 and fail.failed and fail.generation_tokens_per_second is None
    lines = table_text(list(rows.values())).splitlines()
    assert lines[0].split()[-1] == "note" and lines[-1].endswith("failed: other answered 500: no")
    assert "note" not in table_text(summarize(MEASURED)).splitlines()[0]  # only when needed


def test_llama_servers_context_error_and_other_errors_are_read() -> None:
    body = (
        '{"error":{"code":400,"message":"request (650 tokens) exceeds the available context '
        'size (256 tokens), try increasing it","type":"exceed_context_size_error",'
        '"n_prompt_tokens":650,"n_ctx":256}}'
    )
    err = too_long(400, body)
    assert err is not None and (err.prompt_tokens, err.context) == (650, 256)
    assert too_long(500, body) is None and too_long(400, "not json") is None
    assert error_text('{"error": {"message": "image input is not supported"}}') == (
        "image input is not supported"
    )
    assert error_text('{"error": "plain"}') == "plain" and error_text("<html>") == "<html>"
