"""The console script: --version, and --headless until SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from app import __version__


def run_cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        **kw,
    )


def test_version() -> None:
    p = run_cli("--version")
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    assert out.strip() == f"familylog-tray {__version__}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_headless_runs_until_signalled(sig, app_home) -> None:
    p = run_cli("--headless")
    try:
        line = p.stdout.readline()
        assert "running headless" in line, p.stderr.read()
        p.send_signal(sig)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    log = (app_home / "logs" / "familylog-tray.log").read_text()
    assert "Headless core running" in log and "Stopping" in log
    assert "start-up objects (out of the collector's full passes)" in log


def test_bad_setting_is_one_readable_line(app_home) -> None:
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "settings.env").write_text("LLAMA_CTX_SIZE=huge\n")
    p = run_cli("--headless")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 2
    assert "LLAMA_CTX_SIZE='huge'" in err and "settings.env" in err
    assert "Traceback" not in err


def test_headless_stops_the_servers_it_started(app_home, tiny_model, llama_server_bin) -> None:
    import psutil

    from tests.conftest import free_port
    from tests.support.wait import wait_until

    port = free_port()
    env = dict(
        os.environ,
        LLAMA_SERVER_PATH=llama_server_bin,
        LLM_MODEL_GGUF=str(tiny_model),
        LLM_LOAD_AT_START="true",
        LLAMA_LLM_PORT=str(port),
        LLAMA_CTX_SIZE="512",
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "app.main", "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert "running headless" in p.stdout.readline()
        me = psutil.Process(p.pid)
        assert wait_until(lambda: len(me.children()) == 1, 10)
        server = me.children()[0]
        assert str(port) in server.cmdline()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
