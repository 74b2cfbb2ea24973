"""``familylog-tray --process-now`` with no instance running: one headless run, its output
printed, the run's exit code returned (for cron or a systemd timer)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import free_port
from tests.runs.conftest import standin_command


def process_now(env_extra: dict[str, str], app_home) -> subprocess.Popen:
    env = {**os.environ, "API_ENABLED": "false", **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "app.main", "--process-now"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("variant, code", [(("ok", "2"), 0), (("fail", "7"), 7)])
def test_process_now_without_an_instance(familylog_dir, app_home, variant, code) -> None:
    p = process_now(
        {"FAMILYLOG_DIR": str(familylog_dir), "FAMILYLOG_COMMAND": standin_command(*variant)},
        app_home,
    )
    out, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "[standin]" in out
    if code == 0:
        assert "[standin] step 2/2" in out and "[standin] done" in out
    else:
        assert "failed on purpose" in out
        assert "FamilyLog run failed" in err and "Exit code 7" in err
    assert "Traceback (most recent call last):\n  File" not in err
    runs = json.loads((app_home / "state" / "runs.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["trigger"] == "command line"
    assert runs[0]["exit_code"] == code


def test_process_now_with_a_bad_folder(tmp_path, app_home) -> None:
    missing = tmp_path / "no-familylog"
    p = process_now({"FAMILYLOG_DIR": str(missing)}, app_home)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1
    assert f"FAMILYLOG_DIR {missing} does not exist" in err
    assert "run log:" in err


def test_process_now_with_a_preload_model_missing(familylog_dir, tmp_path, app_home) -> None:
    """RUN_PRELOAD names a model whose file is gone: the run does not start, the reason is
    printed, and the exit code is 1 (not 127, which says the command was not found)."""
    missing = tmp_path / "missing.gguf"
    p = process_now(
        {
            "FAMILYLOG_DIR": str(familylog_dir),
            "FAMILYLOG_COMMAND": standin_command("ok", "1"),
            "RUN_PRELOAD": "llm",
            "LLM_MODEL_GGUF": str(missing),
        },
        app_home,
    )
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert f"Model file not found: {missing}" in err
    assert "RUN_PRELOAD=llm needs the LLM model" in err
    assert "[standin]" not in out  # FamilyLog never started
    assert "Traceback (most recent call last):\n  File" not in err
    runs = json.loads((app_home / "state" / "runs.json").read_text())["runs"]
    assert [(r["outcome"], r["exit_code"]) for r in runs] == [("not started", None)]


def test_ctrl_c_cancels_the_run(familylog_dir, app_home) -> None:
    p = process_now(
        {"FAMILYLOG_DIR": str(familylog_dir), "FAMILYLOG_COMMAND": standin_command("hang")},
        app_home,
    )
    try:
        while "hanging" not in (line := p.stdout.readline()):
            assert line, p.stderr.read()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "FamilyLog run cancelled" in err


def llama_servers_on(ports: set[int]) -> list[psutil.Process]:
    """llama-server processes (anyone's children) listening on one of ``ports``."""
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        is_server = "llama-server" in (p.info["name"] or "") and "--port" in cmd
        if is_server and int(cmd[cmd.index("--port") + 1]) in ports:
            out.append(p)
    return out


def test_process_now_serves_the_api_for_an_lmstudio_client(
    familylog_dir, app_home, llama_server_bin, tiny_model, tiny_model_b, port, port2
) -> None:
    """No instance running: the one-off run brings up the LM Studio API (on a port the OS
    picks, told to the child), and FamilyLog as an LM Studio client gets its models."""
    single = free_port()
    p = process_now(
        {
            "FAMILYLOG_DIR": str(familylog_dir),
            "FAMILYLOG_COMMAND": standin_command("lmstudio"),
            "LLAMA_SERVER_PATH": llama_server_bin,
            "VISION_MODEL_GGUF": str(tiny_model),
            "VISION_MODEL_ID": "qwen/qwen3-vl-8b",
            "LLM_MODEL_GGUF": str(tiny_model_b),
            "LLM_MODEL_ID": "google/gemma-3-12b",
            "LLAMA_CTX_SIZE": "512",
            "LLAMA_PORT": str(single),
            "LLAMA_VISION_PORT": str(port),
            "LLAMA_LLM_PORT": str(port2),
            "RUN_MODE": "switch",
            "API_ENABLED": "true",
            "API_PORT": "0",
        },
        app_home,
    )
    try:
        out, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, out + err
    assert re.search(r"vision: loading qwen/qwen3-vl-8b via http://127\.0\.0\.1:\d+/", out)
    assert "via http://127.0.0.1:0/" not in out
    for phase, key in (("vision", "qwen/qwen3-vl-8b"), ("llm", "google/gemma-3-12b")):
        assert f"[standin] {phase}: reply from model {key!r}" in out
        assert f"[standin] {phase}: unloaded {key}" in out
    assert "[standin] done" in out
    # switch mode: both models took their turn on LLAMA_PORT, no other port was used
    logs = sorted(x.name for x in (app_home / "logs").glob("llama-server-*.log"))
    assert logs == [f"llama-server-{single}.log"]
    assert llama_servers_on({single, port, port2}) == []
    runs = json.loads((app_home / "state" / "runs.json").read_text())["runs"]
    assert [(r["outcome"], r["exit_code"], r["trigger"]) for r in runs] == [
        ("succeeded", 0, "command line")
    ]


def test_process_now_without_the_api_the_lmstudio_client_fails(familylog_dir, app_home) -> None:
    """API_ENABLED=false and nothing on API_PORT: the client cannot connect; the command
    exits with the run's exit code (a Python traceback: 1)."""
    p = process_now(
        {
            "FAMILYLOG_DIR": str(familylog_dir),
            "FAMILYLOG_COMMAND": standin_command("lmstudio"),
            "VISION_MODEL_ID": "qwen/qwen3-vl-8b",
            "LLM_MODEL_ID": "google/gemma-3-12b",
            "API_PORT": str(free_port()),
        },
        app_home,
    )
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, out + err
    assert "ConnectError" in out
    assert "FamilyLog run failed" in err and "Exit code 1" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_a_run_whose_children_ignore_sigterm(familylog_dir, app_home, sig) -> None:
    """The run's shell and its child both ignore SIGTERM: Ctrl+C (or SIGTERM) still ends the
    command within the grace period and a second (STOP_GRACE_SECONDS=1), nothing left."""
    script = "trap '' TERM; sleep 60 & echo \"child $!\"; wait"
    p = process_now(
        {
            "FAMILYLOG_DIR": str(familylog_dir),
            "FAMILYLOG_COMMAND": shlex.join(["bash", "-c", script]),
            "STOP_GRACE_SECONDS": "1",
        },
        app_home,
    )
    child = None
    try:
        while not (m := re.match(r"child (\d+)$", (line := p.stdout.readline()).strip())):
            assert line, p.stderr.read()
        child = int(m[1])
        t0 = time.monotonic()
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert took < 1 + 1 + 6, f"--process-now took {took:.1f} s to stop"  # + the app's own exit
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
