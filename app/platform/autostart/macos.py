"""macOS: a LaunchAgent plist in ``~/Library/LaunchAgents`` with ``RunAtLoad``."""

from __future__ import annotations

import plistlib
from pathlib import Path

from .base import remove_own_file, write_entry_file

LABEL = "com.familylog.tray"


class LaunchAgent:
    """``~/Library/LaunchAgents/com.familylog.tray.plist``; launchd reads it at the next login."""

    def __init__(self, command: list[str], home: Path) -> None:
        self.command = command
        self.path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"

    @property
    def location(self) -> str:
        return str(self.path)

    def render(self) -> bytes:
        return plistlib.dumps(
            {
                "Label": LABEL,
                "ProgramArguments": list(self.command),
                "RunAtLoad": True,
                "KeepAlive": False,
                "ProcessType": "Interactive",
                "LimitLoadToSessionType": "Aqua",
            }
        )

    def _read(self) -> dict | None:
        try:
            with self.path.open("rb") as f:
                data = plistlib.load(f)
        except (OSError, plistlib.InvalidFileException, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def enable(self) -> None:
        write_entry_file(self.path, self.render(), "launch agent")

    def disable(self) -> bool:
        data = self._read() if self.path.exists() else None
        return remove_own_file(self.path, data is not None and data.get("Label") == LABEL)

    def is_enabled(self) -> bool:
        data = self._read()
        return bool(
            data
            and data.get("Label") == LABEL
            and data.get("RunAtLoad") is True
            and not data.get("Disabled", False)
        )
