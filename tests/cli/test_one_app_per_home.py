"""One app per home, whatever the mode: a command given beside a running app goes to it and
never touches its servers; a second app on the same home is refused, naming the first.

Real processes throughout: a ``familylog-tray --headless`` serving a tiny model through a
real llama-server, and the real command line beside it."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time

import httpx
import psutil
import pytest

from tests.runs.conftest import standin_command
from tests.support.app import cli, headless_env, start_headless
from tests.support.wait import wait_until

CLI_BOUND = 30.0  # a forwarded command answers at once; room for a busy machine


@pytest.fixture
def headless(app_home, llama_server_bin, tiny_model, familylog_dir):
    """A headless app on this test's home with its LLM loaded at start."""
    env = headless_env(
        llama_server_bin,
        tiny_model,
        LLM_LOAD_AT_START="true",
        FAMILYLOG_DIR=familylog_dir,
        FAMILYLOG_COMMAND=standin_command("ok", "2"),
    )
    p = start_headless(env)
    try:
        yield p, env
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _ps(env: dict[str, str]) -> list[dict]:
    r = httpx.get(f"http://127.0.0.1:{env['API_PORT']}/api/v0/ps", trust_env=False, timeout=10)
    return r.json()["models"]


def test_process_now_beside_a_headless_app_goes_to_it(headless, app_home) -> None:
    """The issue's cron case: the run is the headless app's, its server is untouched."""
    app, env = headless
    (before,) = _ps(env)
    t0 = time.monotonic()
    done = cli("--process-now", env=env)
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    assert f"familylog-tray --headless (PID {app.pid}" in done.stdout
    assert took < CLI_BOUND
    # the headless app ran it, and recorded it
    history = app_home / "state" / "runs.json"

    def finished() -> bool:
        try:
            runs = json.loads(history.read_text())["runs"]
        except (OSError, ValueError):
            return False
        return bool(runs) and runs[-1]["outcome"] == "succeeded"

    assert wait_until(finished, 60)
    (run,) = json.loads(history.read_text())["runs"]
    assert run["trigger"] == "command line"
    # its server was never touched: the same process, still ready, no restart, no reaping
    (after,) = _ps(env)
    assert (after["pid"], after["state"]) == (before["pid"], "ready")
    assert "leftover" not in done.stderr and "address already in use" not in done.stderr
    app_log = (app_home / "logs" / "familylog-tray.log").read_text()
    assert "Reaped orphaned" not in app_log and "crashed" not in app_log


def test_a_second_run_request_while_one_runs_is_answered(
    app_home, llama_server_bin, tiny_model, familylog_dir
) -> None:
    env = headless_env(
        llama_server_bin,
        tiny_model,
        FAMILYLOG_DIR=familylog_dir,
        FAMILYLOG_COMMAND=standin_command("hang"),
        STOP_GRACE_SECONDS=1,
    )
    app = start_headless(env)
    try:
        assert cli("--process-now", env=env).returncode == 0
        again = cli("--process-now", env=env)
        assert again.returncode == 1
        assert "A FamilyLog run is already in progress" in again.stderr
        # what --process-now asked: POST /api/v0/runs; GET /api/v0/runs shows the run
        api = f"http://127.0.0.1:{env['API_PORT']}/api/v0/runs"
        r = httpx.post(api, trust_env=False, timeout=10)
        assert r.status_code == 409 and r.json()["error"]["code"] == "run_in_progress"
        now = httpx.get(api, trust_env=False, timeout=10).json()["status"]
        assert now["state"] == "running" and now["trigger"] == "command line"
    finally:
        app.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert app.wait(60) == 0  # quitting ends the hanging run within its grace period
        assert time.monotonic() - t0 < 1 + 1 + 15  # + stopping the app itself


def test_a_second_headless_app_on_the_same_home_is_refused(headless) -> None:
    app, env = headless
    (before,) = _ps(env)
    other = {**env, "API_PORT": str(int(env["API_PORT"]) + 1)}
    t0 = time.monotonic()
    done = cli("--headless", env=other)
    assert done.returncode == 1
    assert f"familylog-tray --headless (PID {app.pid}" in done.stderr
    assert "already runs on the app home" in done.stderr
    assert time.monotonic() - t0 < CLI_BOUND
    assert _ps(env)[0]["pid"] == before["pid"]


def test_a_tray_beside_a_headless_app_is_refused(headless) -> None:
    app, env = headless
    done = cli(env={**env, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"familylog-tray --headless (PID {app.pid}" in done.stderr


def test_show_beside_a_headless_app_says_there_is_no_window(headless) -> None:
    app, env = headless
    done = cli("--show", env=env)
    assert done.returncode == 1
    assert "without a tray" in done.stderr and f"PID {app.pid}" in done.stderr


def test_a_headless_app_without_its_api_cannot_take_a_run(
    app_home, llama_server_bin, tiny_model, familylog_dir
) -> None:
    env = headless_env(
        llama_server_bin,
        tiny_model,
        API_ENABLED="false",
        FAMILYLOG_DIR=familylog_dir,
        FAMILYLOG_COMMAND=shlex.join(["true"]),
    )
    app = start_headless(env)
    try:
        done = cli("--process-now", env=env)
        assert done.returncode == 1
        assert "serves no API (API_ENABLED=false)" in done.stderr
        assert not (app_home / "state" / "runs.json").exists()  # nothing ran anywhere
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(60)


def test_the_lock_goes_with_the_app(headless, app_home) -> None:
    """An app killed outright leaves no lock behind: the next one starts."""
    app, env = headless
    servers = [c.pid for c in psutil.Process(app.pid).children()]
    app.send_signal(signal.SIGKILL)
    app.wait(30)
    assert wait_until(lambda: not any(psutil.pid_exists(p) for p in servers), 15)
    again = start_headless(env)
    try:
        assert _ps(env)[0]["state"] == "ready"
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(60)
