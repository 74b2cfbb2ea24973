"""``familylog-tray --start-at-login on|off|status``: in process with an injected entry, and
as a real subprocess with this user's XDG autostart (a temp XDG_CONFIG_HOME)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.start_at_login import start_at_login
from app.platform.autostart import XdgAutostart

CMD = ["/opt/Family Log/familylog-tray", "--autostart"]


def test_cli_in_process_prints_state_and_location(tmp_path: Path) -> None:
    entry = XdgAutostart(CMD, tmp_path)
    out = io.StringIO()
    assert start_at_login("on", entry=entry, out=out) == 0
    assert f"Start at login: on ({entry.location})" in out.getvalue()
    err = io.StringIO()
    Path(entry.location).write_text("[Desktop Entry]\nExec=x\n")
    assert start_at_login("off", entry=entry, out=io.StringIO(), err=err) == 1
    assert "not written by" in err.getvalue()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG autostart is Linux")
def test_cli_subprocess_on_status_off() -> None:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "familylog-tray.desktop"
    r = _cli("--start-at-login", "on")
    assert r.returncode == 0, r.stderr
    assert f"Start at login: on ({path})" in r.stdout
    assert path.is_file()
    r = _cli("--start-at-login", "status")
    assert r.returncode == 0 and f"Start at login: on ({path})" in r.stdout
    r = _cli("--start-at-login", "off")
    assert r.returncode == 0 and f"Start at login: off ({path})" in r.stdout
    assert not path.exists()
