"""The speed benchmark against two real llama-servers: the app's own (through its API) and
"the other server", one the test starts itself with the tiny model. The table's speeds
agree with the servers' own timings (their logs), the files and the chart are written."""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
from pathlib import Path

import pytest

from app.cli.benchmark import benchmark_command
from app.paths import AppPaths
from tests.api.conftest import CTX
from tests.conftest import free_port
from tests.support.app import headless_env, run_app, start_foreign_server, start_headless
from tests.support.wait import until, wait_until

LLM = "google/gemma-3-12b"
# the tiny model: one token per character, 512 tokens of context
SIZES = dict(prompt_tokens=40, gen_tokens=48)
EVAL = re.compile(
    r"(prompt eval|\beval) time =\s+([\d.]+) ms /\s+(\d+) tokens .*?([\d.]+) tokens per second"
)


def log_speeds(log: Path) -> dict[str, list[float]]:
    """llama-server's own per-request timings, from its log: tokens/s by kind."""
    out: dict[str, list[float]] = {"prompt eval": [], "eval": []}
    for m in EVAL.finditer(log.read_text(errors="replace")):
        out[m.group(1).strip()].append(float(m.group(4)))
    return out


@pytest.fixture
def other_server(llama_server_bin, tiny_model, tmp_path):
    port = free_port()
    log = tmp_path / "other-server.log"
    proc = start_foreign_server(llama_server_bin, tiny_model, port, log)
    yield f"http://127.0.0.1:{port}", log
    proc.terminate()
    proc.wait(timeout=30)


async def test_benchmark_against_two_real_servers(start_api, other_server, tmp_path, capsys):
    import httpx

    url, other_log = other_server
    core = await start_api()

    def healthy() -> bool:  # the other server is a process we do not own: ask it
        try:
            return httpx.get(f"{url}/health", timeout=5, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(healthy, 60), other_log.read_text()

    paths = AppPaths.resolve().ensure()
    out_json = tmp_path / "bench.json"
    args = argparse.Namespace(
        model=LLM, runs=3, against=f"{url}/v1", against_model=None, json=str(out_json), **SIZES
    )
    code = await benchmark_command(args, core.settings, paths)
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, printed + captured.err
    assert "[0/18] run 1/3: short chat on app" in printed and "[18/18] done" in printed
    assert "generation t/s" in printed and f"app ({LLM})" in printed

    data = json.loads(out_json.read_text())
    rows = data["results"]
    assert {(r["server"], r["prompt"]) for r in rows} == {
        (s, p) for s in ("app", f"{url}/v1") for p in ("short chat", "long prompt", "generate")
    }
    for r in rows:
        assert r["runs"] == 3 and r["model"]
        for f in ("generation_tokens_per_second", "prompt_tokens_per_second"):
            assert r[f] > 0, r
        assert r["time_to_first_token_ms"] > 0 and r["source"] == "server"
    gens = [m for m in data["measurements"] if m["prompt"] == "generate"]
    assert {m["tokens"] for m in gens} == {48}  # ignore_eos: exactly as many as asked

    # the table agrees with each server's own timings (its log) within 10 %
    app_log = core.log_path(core.settings.LLAMA_LLM_PORT)
    for server, log in (("app", app_log), (f"{url}/v1", other_log)):
        own = log_speeds(log)
        mine = [m for m in data["measurements"] if m["server"] == server]
        assert len(own["eval"]) >= len(mine), (server, own)
        own_gen = statistics.median(own["eval"][-len(mine) :])
        own_prompt = statistics.median(own["prompt eval"][-len(mine) :])
        table_gen = statistics.median(m["generation_tokens_per_second"] for m in mine)
        table_prompt = statistics.median(m["prompt_tokens_per_second"] for m in mine)
        assert table_gen == pytest.approx(own_gen, rel=0.10), (server, table_gen, own_gen)
        assert table_prompt == pytest.approx(own_prompt, rel=0.10), (server, own_prompt)

    # kept in the app home: JSON, CSV (one line per run) and the chart
    kept = sorted(p.suffix for p in paths.bench_dir.iterdir())
    assert kept == [".csv", ".json", ".png"]
    csv_file = next(paths.bench_dir.glob("*.csv"))
    assert len(csv_file.read_text().splitlines()) == 1 + 18
    png = next(paths.bench_dir.glob("*.png"))
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    # the app's own speed statistics saw the same replies
    await until(lambda: core.stats.get(LLM) is not None)
    assert core.stats.get(LLM).requests == 9


async def test_benchmark_fits_a_vision_model_and_one_failure_hides_nothing(
    start_api, other_server, tiny_vision, tmp_path
) -> None:
    """A vision model with a 512-token context: the long prompt (2,000 tokens of words) is
    shortened to fit and the table says so; the image prompt runs; the other server (a text
    model without a projector) fails the image prompt, which shows in its row while all its
    other prompts still run, and the command exits 1."""
    url, other_log = other_server
    model, mmproj = tiny_vision
    core = await start_api(VISION_MODEL_GGUF=str(model), VISION_MMPROJ=str(mmproj))
    vlm = "qwen/qwen3-vl-8b"
    import httpx

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=5, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(healthy, 60), other_log.read_text()
    out_json = tmp_path / "bench.json"
    args = argparse.Namespace(
        model=vlm,
        runs=2,
        against=f"{url}/v1",
        against_model=None,
        json=str(out_json),
        prompt_tokens=2000,
        gen_tokens=48,
    )
    code = await benchmark_command(args, core.settings, AppPaths.resolve().ensure())
    assert code == 1
    rows = {(r["server"], r["prompt"]): r for r in json.loads(out_json.read_text())["results"]}
    other = f"{url}/v1"
    prompts = ("short chat", "long prompt", "generate", "image")
    assert set(rows) == {(s, p) for s in ("app", other) for p in prompts}
    for server in ("app", other):
        long = rows[(server, "long prompt")]
        assert long["runs"] == 2 and long["generation_tokens_per_second"] > 0
        assert "to fit the model's context" in long["note"], long
        fitted_tokens = int(re.search(r"shortened to ([\d,]+) prompt", long["note"])[1])
        assert 64 < fitted_tokens <= CTX - 32
    image = rows[("app", "image")]
    assert image["runs"] == 2 and image["generation_tokens_per_second"] > 0 and not image["note"]
    failed = rows[(other, "image")]
    assert failed["runs"] == 0 and failed["failed"] and failed["note"].startswith("failed: ")
    assert "image" in failed["note"] or "mmproj" in failed["note"], failed["note"]
    for p in ("short chat", "generate"):
        assert rows[(other, p)]["runs"] == 2 and not rows[(other, p)]["failed"]
    # the app's llama-server evaluated the shortened prompt: its log shows that many tokens
    log = core.log_path(core.settings.LLAMA_VISION_PORT).read_text(errors="replace")
    evaluated = [
        int(n) for n in re.findall(r"prompt eval time =\s+[\d.]+ ms /\s+(\d+) tokens", log)
    ]
    assert max(evaluated) <= CTX


# ── The command line itself: familylog-tray --benchmark ───────────────────────
PROMPT_EVAL = re.compile(r"prompt eval time =\s+[\d.]+ ms /\s+(\d+) tokens")


def _bench(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    p = run_app("--benchmark", *args, env=env)
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err


def test_benchmark_without_an_app_exits_3(app_home) -> None:
    code, out, err = _bench({"API_PORT": str(free_port())}, "--runs", "1")
    assert code == 3, (out, err)
    assert "start the app first" in err and out == ""


def test_benchmark_command_line(app_home, tiny_model, llama_server_bin, other_server) -> None:
    """Against a running --headless app: with no model loaded it cannot choose (exit 2);
    with one loaded and no --model it takes that one; --against / --against-model add the
    other server; ``cache_prompt: false`` makes every run evaluate its whole prompt (each
    server's own log); ``--json`` alone prints JSON and nothing else."""
    url, other_log = other_server
    env = headless_env(llama_server_bin, tiny_model, LLM_MODEL_ID=LLM)
    app = start_headless(env)
    try:
        code, out, err = _bench(env, "--runs", "1")
        assert code == 2 and "No model is loaded; name one with --model" in err, (out, err)
        load = run_app("--load", LLM, env=env)
        assert load.wait(120) == 0, load.communicate()
        assert wait_until(lambda: _healthy(url), 60)
        args = ["--runs", "2", "--prompt-tokens", "40", "--gen-tokens", "8"]
        code, out, err = _bench(
            env, *args, "--against", f"{url}/v1", "--against-model", "x", "--json"
        )
        assert code == 0, err
        data = json.loads(out)  # the whole of stdout is the JSON
        rows = data["results"]
        assert {(r["server"], r["model"]) for r in rows} == {("app", LLM), (f"{url}/v1", "x")}
        assert {r["prompt"] for r in rows} == {"short chat", "long prompt", "generate"}
        assert all(r["runs"] == 2 for r in rows)
        app_log = app_home / "logs" / f"llama-server-{env['LLAMA_LLM_PORT']}.log"
        for log in (app_log, other_log):
            # the long prompt twice, each time whole (a cached prompt evaluates 1 token)
            evaluated = sorted(int(n) for n in PROMPT_EVAL.findall(log.read_text()))
            assert evaluated[-1] == evaluated[-2] >= 40, (log.name, evaluated)
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(60)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
