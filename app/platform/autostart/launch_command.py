"""The command that starts the app the same way it is running now.

- a frozen bundle (PyInstaller): ``sys.executable``;
- a source checkout with uv: ``uv run --project <checkout> familylog-tray``;
- an installed package: the ``familylog-tray`` console script next to the interpreter,
  then the one on PATH, then ``python -m app.main``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import app

from .base import APP_ID, AUTOSTART_FLAG

Which = Callable[[str], str | None]


def is_checkout(app_dir: Path) -> bool:
    """True when ``app_dir`` is the ``app`` package of a source checkout, not an install."""
    root = app_dir.parent
    if "site-packages" in app_dir.parts or "dist-packages" in app_dir.parts:
        return False
    pyproject = root / "pyproject.toml"
    try:
        return pyproject.is_file() and f'name = "{APP_ID}"' in pyproject.read_text("utf-8")
    except OSError:
        return False


def launch_command(
    *,
    frozen: bool | None = None,
    executable: str | None = None,
    app_dir: Path | None = None,
    which: Which = shutil.which,
    windows: bool | None = None,
) -> list[str]:
    """The argv that starts the app at login, ending with ``--autostart``."""
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    executable = executable or sys.executable
    app_dir = app_dir or Path(app.__file__).resolve().parent
    windows = sys.platform == "win32" if windows is None else windows
    return [*_base_command(frozen, executable, app_dir, which, windows), AUTOSTART_FLAG]


def _base_command(
    frozen: bool, executable: str, app_dir: Path, which: Which, windows: bool
) -> list[str]:
    if frozen:
        return [str(Path(executable).resolve())]
    if is_checkout(app_dir):
        uv = which("uv")
        if uv:
            return [str(Path(uv).resolve()), "run", "--project", str(app_dir.parent), APP_ID]
    script = Path(executable).parent / (f"{APP_ID}.exe" if windows else APP_ID)
    if script.is_file():
        return [str(script)]
    on_path = which(APP_ID)
    if on_path:
        return [str(Path(on_path).resolve())]
    return [str(executable), "-m", "app.main"]
