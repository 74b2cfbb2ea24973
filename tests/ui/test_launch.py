"""The launch as a person meets it, with real processes (offscreen Qt): a second launch
while the set-up dialog is open, ``--load`` / ``--unload`` forwarded to a running app with a
real llama-server, no display at all, and the set-up skipped for env-provided settings."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port
from tests.support.app import CTX, run_app
from tests.support.wait import wait_until

# The command line with no display at all: the variables are removed inside the process.
NO_DISPLAY = """
import os, sys
for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
    os.environ.pop(var, None)
from app.main import main
sys.exit(main(sys.argv[1:]))
"""


def app_log(home: Path) -> str:
    f = home / "logs" / "familylog-tray.log"
    return f.read_text() if f.is_file() else ""


def stop(p: subprocess.Popen) -> int:
    """SIGTERM, as the session does on log-out; killed if it does not end."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise


def cli(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    p = run_app(*args, env={})
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, err


def servers_of(p: subprocess.Popen, binary: str) -> list[psutil.Process]:
    out = []
    for c in psutil.Process(p.pid).children(recursive=True):
        try:
            if c.cmdline()[:1] == [binary] and c.status() != psutil.STATUS_ZOMBIE:
                out.append(c)
        except psutil.Error:
            pass
    return out


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_second_launch_during_set_up_raises_the_dialog(app_home) -> None:
    # No settings and no models in the (empty) user folders: the set-up dialog opens.
    first = run_app(env={})
    try:
        assert wait_until(lambda: "Set-up dialog open" in app_log(app_home), 60), app_log(app_home)
        # The second launch is answered by the first (it hung ~20 s before the lock was
        # taken ahead of the dialog): it ends on its own, through the wait helper, saying so.
        second = run_app(env={})
        try:
            assert wait_until(lambda: second.poll() is not None, 60), "the second launch hangs"
        finally:
            if second.poll() is None:
                second.kill()
        out, err = second.communicate()
        assert second.returncode == 0, (out, err)
        assert "already running: the set-up dialog is open and now in front" in out, out
        assert "Another launch: the set-up dialog is brought to the front" in app_log(app_home)

        code, out, err = cli("--load", "anything")
        assert code == 1, (out, err)
        assert "being set up (its set-up dialog is open)" in err, err
        assert first.poll() is None, "the first app must still be running"
    finally:
        stop(first)
    assert app_log(app_home).count("Opening the set-up dialog") == 1


def test_no_display_exits_2_before_qt(app_home) -> None:
    p = run_app(env={}, code=NO_DISPLAY)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("familylog-tray: no display to show the tray on"), err
    assert "familylog-tray --headless" in lines[0]
    assert "Opening the set-up dialog" not in app_log(app_home)


# What the launch imports before the tray icon shows, in a fresh interpreter.
BEFORE_ICON = """
import sys
import app.main, app.ui.launch, app.ui.single_instance, app.ui.tray
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_settings")
             or m in ("app.config", "app.settings_load", "app.core.bootstrap", "aiohttp",
                      "asyncio", "qasync")))
"""


def test_the_icon_shows_before_the_settings_model_is_imported() -> None:
    # pydantic was most of the imports before the icon, asyncio the next (bench/startup.py)
    out = subprocess.run(
        [sys.executable, "-c", BEFORE_ICON], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_load_and_unload_need_a_running_app(app_home) -> None:
    code, out, err = cli("--load", "tiny")
    assert code == 3, (out, err)
    assert "familylog-tray is not running" in err and "Start it first" in err, err
    code, out, err = cli("--unload", "all")
    assert code == 3, (out, err)
    assert app_log(app_home) == "" or "Opening" not in app_log(app_home)
    code, _, err = cli("--ctx", "512")
    assert code == 2 and "--ctx goes with --load" in err, err


@pytest.fixture
def running_app(app_home, llama_server_bin, tiny_model):
    """The tray app (offscreen) with its settings only in the environment: no settings
    file, so this is a first launch that needs no set-up dialog."""
    api_port = free_port()
    env = {
        "LLAMA_SERVER_PATH": llama_server_bin,
        "LLM_MODEL_GGUF": str(tiny_model),
        "LLAMA_LLM_PORT": str(free_port()),
        "LLAMA_VISION_PORT": str(free_port()),
        "LLAMA_PORT": str(free_port()),
        "LLAMA_CTX_SIZE": str(CTX),
        "API_PORT": str(api_port),
        "MODEL_DIRS": str(tiny_model.parent),
    }
    p = run_app(env=env)
    try:
        # Started when its API answers (the last thing the core starts).
        assert wait_until(lambda: answers(api_port) or p.poll() is not None, 60)
        assert p.poll() is None, p.communicate()
        yield p
    finally:
        code = stop(p)
    assert code == 0


def test_env_settings_skip_the_set_up_dialog(running_app, app_home, llama_server_bin) -> None:
    log = app_log(app_home)
    assert "Opening the set-up dialog" not in log
    assert not (app_home / "settings.env").exists()
    assert f"Set-up skipped: the app uses llama-server ({llama_server_bin}) and the LLM model " in (
        log
    )
    assert "from the environment" in log


def test_load_and_unload_are_forwarded(running_app, llama_server_bin, tiny_model) -> None:
    key = tiny_model.stem
    code, out, err = cli("--load", key)
    assert code == 0, (out, err)
    assert out.startswith(f"Loaded {key} in ") or out.startswith(f"Loaded LLM ({key}) in "), out
    assert f"(context {CTX} tokens)" in out, out
    # where clients ask for it: the API's bound address, not the text of a method
    assert re.search(rf'; clients ask for "{re.escape(key)}" at http://127\.0\.0\.1:\d+\.$', out), (
        out
    )
    assert len(servers_of(running_app, llama_server_bin)) == 1

    code, out, err = cli("--load", key)
    assert code == 0, (out, err)
    assert "was already loaded" in out, out
    assert len(servers_of(running_app, llama_server_bin)) == 1

    code, out, err = cli("--load", key, "--ctx", "1024")
    assert code == 0, (out, err)
    assert "(context 1,024 tokens)" in out, out
    assert len(servers_of(running_app, llama_server_bin)) == 1

    code, out, err = cli("--load", "no-such-model")
    assert code == 1, (out, err)
    assert "There is no model called 'no-such-model'. Known models: " in err, err
    assert key in err

    code, out, err = cli("--unload", "all")
    assert code == 0, (out, err)
    assert out.startswith("Unloaded 1 model(s)") and key in out, out
    assert wait_until(lambda: not servers_of(running_app, llama_server_bin), 10)

    code, out, err = cli("--unload", key)
    assert code == 0 and "was not loaded; nothing to do" in out, (out, err)
    code, out, err = cli("--unload", "no-such-model")
    assert code == 1 and "There is no model called 'no-such-model'" in err, err


def test_the_settings_notice_waits_for_the_tray(make_app) -> None:
    from app.core.notices import Level, Notice
    from app.ui.launch import announce_when_shown

    app = make_app()
    told = Notice(Level.INFO, "Settings found", "Set-up skipped: the app uses ...")
    announce_when_shown(app, told)
    assert told not in app.core.notices.history  # no tray icon yet: a balloon would be lost
    app.tray_shown.emit(True)
    app.tray_shown.emit(True)
    assert [n for n in app.core.notices.history if n is told] == [told]
    assert app.notifier.history[-1] is told
