"""``familylog-tray --start-at-login on|off|status``: change or show starting at login
(``app.platform.autostart``); no app needed."""

from __future__ import annotations

import sys
from typing import TextIO

from app.exit_codes import ExitCode
from app.platform.autostart import APP_ID, Autostart, AutostartError, autostart_for


def describe(entry: Autostart) -> str:
    state = "on" if entry.is_enabled() else "off"
    return f"Start at login: {state} ({entry.location})"


def start_at_login(
    action: str,
    *,
    entry: Autostart | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Change or show the state; print it and where it lives."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        entry = entry or autostart_for()
        if action == "on":
            entry.enable()
        elif action == "off":
            removed = entry.disable()
            if not removed:
                print(f"Nothing to remove: there was no entry at {entry.location}", file=out)
        elif action != "status":
            print(f"{APP_ID}: unknown action {action!r}; use on, off or status", file=err)
            return ExitCode.USAGE
        print(describe(entry), file=out)
        if action == "on":
            command = getattr(entry, "command", None)
            if command:
                print(f"At login it runs: {' '.join(command)}", file=out)
        return ExitCode.OK
    except AutostartError as e:
        print(f"{APP_ID}: {e}", file=err)
        return ExitCode.FAILED
