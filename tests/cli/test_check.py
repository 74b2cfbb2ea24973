"""``familylog-tray --check [KEY|all] [--json]`` against a running ``--headless`` app (its own
process, real llama-servers, the tiny vision pair): the table, JSON, the exit codes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from app.main import parse_args
from tests.conftest import free_port
from tests.support.app import headless_env, run_app, start_headless
from tests.support.tiny_vision import write_tiny_mmproj

VLM, LLM = "tiny/vision", "tiny/llm"


def _check(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    p = run_app("--check", *args, env=env)
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err


@pytest.fixture
def headless(llama_server_bin, tiny_model_b, tiny_vision):
    """``headless(**settings)`` → the environment of a started ``--headless`` app serving the
    vision pair and an LLM; stopped at the end."""
    started = []

    def start(**extra) -> dict[str, str]:
        model, mmproj = tiny_vision
        settings = {
            "LLM_MODEL_ID": LLM,
            "VISION_MODEL_GGUF": model,
            "VISION_MMPROJ": mmproj,
            "VISION_MODEL_ID": VLM,
            "LLAMA_VISION_PORT": free_port(),
            "LLAMA_PORT": free_port(),
            **extra,
        }
        env = headless_env(llama_server_bin, tiny_model_b, **settings)
        started.append(start_headless(env))
        return env

    yield start
    for p in started:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)


def test_check_without_an_app_says_so(app_home) -> None:
    code, out, err = _check({"API_PORT": str(free_port())})
    assert code == 3 and out == ""
    assert "start the app first" in err


def test_check_familylog_models_table_json_and_exit_codes(headless) -> None:
    env = headless(RUN_MODE="switch", API_KEY="sekret")
    code, out, err = _check(env)
    assert code == 0, out + err
    assert f"… {VLM}: loading" in out  # what runs, as it runs
    table = out[out.index("MODEL") :]
    assert table.rstrip().endswith("All checks passed.")
    for check in ("image", "the switch to the LLM works", "each has its log file"):
        assert f"{check} " in table and "fail" not in table

    code, out, err = _check(env, "all", "--json")
    assert code == 0, err
    report = json.loads(out)  # nothing but the JSON on stdout
    assert report["ok"] is True and report["refused"] is None
    subjects = {c["subject"] for c in report["checks"]}
    assert subjects == {VLM, LLM, "FamilyLog"}

    code, out, err = _check(env, "no/such-model")
    assert code == 1 and "unknown model" in out and "1 check failed." in out


def test_check_names_a_broken_projector_and_exits_1(headless, tmp_path: Path) -> None:
    broken = write_tiny_mmproj(tmp_path / "mmproj-broken.gguf", drop=("v.patch_embd.weight",))
    env = headless(VISION_MMPROJ=broken)
    code, out, err = _check(env, VLM)
    assert code == 1, err
    assert f"broken projector file: llama-server crashed reading {broken}" in out
    assert out.rstrip().endswith("1 check failed.")  # the load; the rest were not run


def test_check_arguments() -> None:
    assert parse_args(["--check"]).check == ""
    assert parse_args(["--check", "all", "--json"]).check == "all"
    for bad in (
        ["--check", "--ps"],
        ["--check", "--json", "x.json"],
        ["--check", "--headless"],
        ["--check", "--download", "org/repo"],
    ):
        with pytest.raises(SystemExit) as e:
            parse_args(bad)
        assert e.value.code == 2
