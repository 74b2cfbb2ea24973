"""End to end on a real X server: Xvfb + trayer as the tray host, the real app, xdotool.

Saves screenshots of the open tray menu and of the models window to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.settings.settings_file import update_settings_file
from tests.conftest import free_port
from tests.support.tiny_model import write_tiny_model
from tests.support.wait import wait_until

pytestmark = pytest.mark.display

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo")
GRAB = (
    "import sys\n"
    "from PySide6.QtGui import QGuiApplication\n"
    "app = QGuiApplication(['grab'])\n"
    "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)\n"
)


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def xdisplay():
    """A private Xvfb display with trayer as the system tray; both stopped afterwards."""
    if not sys.platform.startswith("linux"):
        pytest.skip("needs X11")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (.ci/run installs them)")
    r, w = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    trayer = None
    try:
        with os.fdopen(r) as f:
            number = f.readline().strip()
        assert number.isdigit(), "Xvfb did not report its display"
        display = f":{number}"
        env = {**os.environ, "DISPLAY": display}
        trayer = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
             "--height", "28", "--transparent", "false", "--tint", "0x404040"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert wait_until(lambda: '("panel" "trayer")' in tree(env), 20), "trayer did not start"
        yield env
    finally:
        _stop(trayer)
        _stop(xvfb)


def tree(env: dict[str, str]) -> str:
    done = subprocess.run(
        ["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True, timeout=10
    )
    return done.stdout


def app_windows(env: dict[str, str]) -> list[tuple[str, int, int, int]]:
    """(window id, indent, width, height) of every window of class familylog-tray."""
    out = []
    for line in tree(env).splitlines():
        m = re.match(r'^(\s*)(0x[0-9a-f]+) .*"familylog-tray"\)\s+(\d+)x(\d+)', line)
        if m:
            out.append((m.group(2), len(m.group(1)), int(m.group(3)), int(m.group(4))))
    return out


def grab(env: dict[str, str], name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-c", GRAB, str(path)],
        env={**env, "QT_QPA_PLATFORM": "xcb"},
        check=True,
        timeout=60,
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    return path


def test_tray_icon_menu_and_models_window_on_a_real_x_server(
    xdisplay, app_home, llama_server_bin, tiny_model, tiny_model_b, tmp_path
) -> None:
    env = {**xdisplay, "QT_QPA_PLATFORM": "xcb"}
    port = free_port()
    models = tmp_path / "lms-models"
    for i, rel in enumerate(
        (
            "lmstudio-community/Alpha-1B-GGUF/Alpha-1B-Q8_0.gguf",
            "bartowski/beta-2b-GGUF/beta-2b-F32.gguf",
            "gamma-loose.gguf",
        )
    ):
        path = models / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tiny_model(path, seed=10 + i, name=path.stem.rsplit("-", 1)[0].lower())
    app_home.mkdir(parents=True, exist_ok=True)
    update_settings_file(
        app_home / "settings.env",
        {
            "LLAMA_SERVER_PATH": llama_server_bin,
            "LLM_MODEL_GGUF": str(tiny_model),
            "VISION_MODEL_GGUF": str(tiny_model_b),
            "MODEL_DIRS": str(models),
            "LLM_LOAD_AT_START": "true",
            "LLAMA_LLM_PORT": str(port),
            "LLAMA_CTX_SIZE": "512",
            "API_ENABLED": "false",
        },
    )
    log = app_home / "logs" / "familylog-tray.log"

    def logged(text: str) -> bool:
        return log.is_file() and text in log.read_text()

    app = subprocess.Popen(
        [sys.executable, "-m", "app.main"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_until(lambda: logged("Tray icon shown"), 60), log.read_text()
        # the icon comes before the core starts (the folder scan is part of its start)
        assert wait_until(lambda: logged("Found "), 60), log.read_text()
        text = log.read_text()
        assert text.index("Tray icon shown while starting") < text.index("Found "), text
        assert wait_until(lambda: logged(f"ready on port {port}"), 60), log.read_text()
        # started: what start-up made is out of the collector's full passes (bench/ui.py)
        assert wait_until(lambda: logged("start-up objects (out of the collector"), 60)

        # the icon is a window embedded in trayer's panel
        assert wait_until(lambda: app_windows(xdisplay), 20), tree(xdisplay)
        text = tree(xdisplay)
        panel_line = next(ln for ln in text.splitlines() if '("panel" "trayer")' in ln)
        panel_indent = len(panel_line) - len(panel_line.lstrip())
        icon_id, indent, w, h = app_windows(xdisplay)[0]
        assert indent > panel_indent and text.index(panel_line) < text.index(icon_id)
        assert w <= 64 and h <= 64

        # right-click opens the menu: a new, larger window of the app
        subprocess.run(
            ["xdotool", "mousemove", "--window", icon_id, str(w // 2), str(h // 2), "click", "3"],
            env=xdisplay,
            check=True,
            timeout=10,
        )
        assert wait_until(lambda: any(ww > 200 for _, _, ww, _ in app_windows(xdisplay)), 20)
        grab(xdisplay, "e2e-tray-menu.png")
        # "Other models" opened too: hover down the menu until a submenu window appears
        # (it is the first submenu from the top); the menu has no keyboard focus here
        menu_id, _, mw, mh = max(app_windows(xdisplay), key=lambda x: x[2] * x[3])

        def menus() -> int:
            return len([1 for _, _, ww, hh in app_windows(xdisplay) if ww > 100 and hh > 20])

        shown = menus()
        opened = False
        for y in range(8, mh, 8):
            subprocess.run(
                ["xdotool", "mousemove", "--window", menu_id, str(mw // 2), str(y)],
                env=xdisplay,
                check=True,
                timeout=10,
            )
            if wait_until(lambda: menus() > shown, 0.6):
                opened = True
                break
        assert opened, tree(xdisplay)
        grab(xdisplay, "e2e-tray-menu-other-models.png")
        for _ in range(2):
            subprocess.run(["xdotool", "key", "Escape"], env=xdisplay, check=True, timeout=10)

        # a second launch forwards --show to this instance
        second = subprocess.run(
            [sys.executable, "-m", "app.main", "--show"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 0 and "models window is open" in second.stdout, second
        assert wait_until(lambda: logged("Models window shows GPU memory"), 30)
        visible = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", "models and memory"],
            env=xdisplay,
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert visible.returncode == 0 and visible.stdout.strip()
        grab(xdisplay, "e2e-models-window.png")

        # SIGTERM quits cleanly and stops the server it started
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=60) == 0, app.stdout.read()
        assert logged("Exited cleanly") and logged(f"unloaded from port {port}")
    finally:
        _stop(app, signal.SIGKILL)
