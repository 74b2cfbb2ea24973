"""Checking FAMILYLOG_DIR and FAMILYLOG_COMMAND before a run, with messages to act on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from app.config import Settings
from app.core.runs.preload import PrepareError


def resolve_command(s: Settings, path_env: str | None) -> tuple[Path, list[str]]:
    """The folder and the argv to run, checked; ``PrepareError`` says what to fix."""
    if not s.FAMILYLOG_DIR:
        raise PrepareError(
            "FAMILYLOG_DIR is not set. Set it in Settings to your FamilyLog folder "
            "(the one with run.py)."
        )
    cwd = Path(s.FAMILYLOG_DIR).expanduser()
    if not cwd.exists():
        raise PrepareError(
            f"FAMILYLOG_DIR {cwd} does not exist. Set it in Settings to your FamilyLog "
            "folder (the one with run.py)."
        )
    if not cwd.is_dir():
        raise PrepareError(
            f"FAMILYLOG_DIR {cwd} is a file, not a folder. Set it to your FamilyLog folder."
        )
    argv = s.familylog_command
    if not argv:
        raise PrepareError("FAMILYLOG_COMMAND is empty; set it, e.g. 'uv run python run.py'.")
    exe = argv[0]
    if os.sep in exe or (os.altsep and os.altsep in exe):
        path = Path(exe).expanduser()
        path = path if path.is_absolute() else cwd / path
        found = str(path) if path.is_file() else None
    else:
        found = shutil.which(exe, path=path_env)
    if found is None:
        raise CommandNotFoundError(
            f"Command not found: {exe!r} (FAMILYLOG_COMMAND={s.FAMILYLOG_COMMAND!r}). "
            "Install it or put its full path in FAMILYLOG_COMMAND."
        )
    return cwd, [found, *argv[1:]]


COMMAND_NOT_FOUND = 127  # what a shell answers for a missing command


class CommandNotFoundError(PrepareError):
    """FAMILYLOG_COMMAND names a program that is not there (the shell's exit code 127)."""
