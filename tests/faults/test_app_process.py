"""Faults of the app process itself: killed, terminated, bad settings, no writable home."""

from __future__ import annotations

import json
import signal

import psutil
import pytest

from app.core.servers.ownership import OwnershipRecord
from tests.conftest import free_port, llama_children
from tests.support.app import CTX, alive, make_core, run_app, settings_for, titles
from tests.support.wait import wait_until

# The app as it would run on macOS: no parent-death signal, so its servers outlive it.
WITHOUT_PDEATHSIG = """
import sys
import app.core.servers.manager as manager
from app.platform.processes import MacProcesses
manager.process_platform = lambda platform=None: MacProcesses()
from app.main import main
sys.exit(main(sys.argv[1:]))
"""


def _two_profiles_env(llama_server_bin, tiny_model, tiny_model_b) -> dict[str, str]:
    return {
        "LLAMA_SERVER_PATH": llama_server_bin,
        "LLM_MODEL_GGUF": str(tiny_model),
        "VISION_MODEL_GGUF": str(tiny_model_b),
        "LLM_LOAD_AT_START": "true",
        "VISION_LOAD_AT_START": "true",
        "LLAMA_LLM_PORT": str(free_port()),
        "LLAMA_VISION_PORT": str(free_port()),
        "LLAMA_CTX_SIZE": str(CTX),
    }


def _start_with_two_servers(env: dict[str, str], code: str | None = None):
    p = run_app("--headless", env=env, code=code)
    line = p.stdout.readline()  # printed once the load-at-start profiles are ready
    assert "running headless" in line, p.stderr.read()
    me = psutil.Process(p.pid)
    assert wait_until(lambda: len(me.children()) == 2, 30)
    return p, [c.pid for c in me.children()]


@pytest.mark.parametrize("children_die_with_the_app", [True, False], ids=["linux", "macos"])
async def test_app_killed_with_sigkill_while_two_servers_run(
    children_die_with_the_app, app_home, llama_server_bin, tiny_model, tiny_model_b
) -> None:
    env = _two_profiles_env(llama_server_bin, tiny_model, tiny_model_b)
    code = None if children_die_with_the_app else WITHOUT_PDEATHSIG
    p, pids = _start_with_two_servers(env, code)
    try:
        record = OwnershipRecord(app_home / "state" / "servers.json").read()
        assert sorted(e.pid for e in record) == sorted(pids)
        p.send_signal(signal.SIGKILL)
        assert p.wait(30) == -signal.SIGKILL
        if children_die_with_the_app:
            # PR_SET_PDEATHSIG: the kernel ends them with the app, before any next start.
            assert wait_until(lambda: not any(alive(pid) for pid in pids), 15), pids
        else:
            assert all(alive(pid) for pid in pids)  # orphans now, holding their ports
        # The next start reaps whatever is left and tells the user.
        s = settings_for(
            llama_server_bin,
            LLAMA_LLM_PORT=int(env["LLAMA_LLM_PORT"]),
            LLAMA_VISION_PORT=int(env["LLAMA_VISION_PORT"]),
            LLM_MODEL_GGUF=env["LLM_MODEL_GGUF"],
            VISION_MODEL_GGUF=env["VISION_MODEL_GGUF"],
            LLM_LOAD_AT_START=True,
            VISION_LOAD_AT_START=True,
        )
        core = make_core(s)
        await core.start()
        reaped = [n for n in core.notices.history if n.title == "Stopped a leftover server"]
        told = [(n.title, n.text) for n in core.notices.history]
        assert len(reaped) == (0 if children_die_with_the_app else 2), told
        assert not any("is taken" in t for t in titles(core)) and core.external == {}, told
        assert not any(alive(pid) for pid in pids)
        assert not core.paths.ownership_file.exists()
        await core.load_at_start()
        # both ports are usable again
        assert len(core.manager.get_loaded_models()) == 2, core.manager.statuses()
        await core.stop()
        assert llama_children() == [] and not core.paths.ownership_file.exists()
    finally:
        for pid in pids:
            if alive(pid):
                psutil.Process(pid).kill()
        if p.poll() is None:
            p.kill()
            p.wait()
    # No log lost: each server log holds both runs.
    for port in (env["LLAMA_LLM_PORT"], env["LLAMA_VISION_PORT"]):
        log = (app_home / "logs" / f"llama-server-{port}.log").read_text()
        assert log.count("familylog-tray start:") == 2 and log.count("listening on") == 2


async def test_sigterm_stops_the_app_cleanly(
    app_home, llama_server_bin, tiny_model, tiny_model_b
) -> None:
    env = _two_profiles_env(llama_server_bin, tiny_model, tiny_model_b)
    p, pids = _start_with_two_servers(env)
    try:
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not any(alive(pid) for pid in pids)
    assert not (app_home / "state" / "servers.json").exists()
    app_log = (app_home / "logs" / "familylog-tray.log").read_text()
    assert "Stopping" in app_log and app_log.count("unloaded from port") == 2
    for port in (env["LLAMA_LLM_PORT"], env["LLAMA_VISION_PORT"]):
        log = (app_home / "logs" / f"llama-server-{port}.log").read_text()
        assert "listening on" in log and "exited with code 0" in log


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"LLAMA_LLM_PORT=99999\n", "Setting LLAMA_LLM_PORT='99999' is invalid"),
        (b'LLAMA_CTX_SIZE=512\nLLM_MODEL_GGUF="/m/unterminated\n', "line 2: cannot read"),
        (b"\xff\xfeLLAMA_CTX_SIZE=1\n", "Cannot read the settings files"),
    ],
    ids=["invalid-value", "unparseable-line", "not-utf8"],
)
@pytest.mark.parametrize("launch", [["--headless"], []], ids=["headless", "tray"])
def test_settings_file_invalid_or_unparseable(app_home, content, expected, launch) -> None:
    # the tray reads its settings once its icon shows: the same message and exit code
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "settings.env").write_bytes(content)
    p = run_app(*launch, env={})
    out, err = p.communicate(timeout=30)
    assert p.returncode == 2
    assert err.startswith("familylog-tray: ") and expected in err
    assert str(app_home / "settings.env") in err and "Traceback" not in err
    assert "running headless" not in out


def test_app_home_not_writable(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the app home should go")
    home = blocker / "home"
    p = run_app("--headless", env={"FAMILYLOG_TRAY_HOME": str(home)})
    _, err = p.communicate(timeout=30)
    assert p.returncode == 2
    assert f"familylog-tray: Cannot create the app folder {home}" in err
    assert "set FAMILYLOG_TRAY_HOME to a writable folder" in err and "Traceback" not in err
    assert json.dumps(blocker.read_text())  # untouched
