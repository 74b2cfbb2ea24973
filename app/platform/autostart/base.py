"""What every start-at-login entry offers, whatever the OS."""

from __future__ import annotations

from typing import Protocol

APP_ID = "familylog-tray"
APP_TITLE = "FamilyLog Tray"
AUTOSTART_FLAG = "--autostart"


class AutostartError(RuntimeError):
    """The entry cannot be written, read or removed; the message says what to do."""


class Autostart(Protocol):
    """One OS's start-at-login entry. The state is always read from disk (or the registry)."""

    @property
    def location(self) -> str:
        """The file or registry value the entry lives in, for messages."""
        ...

    def enable(self) -> None:
        """Write the entry; doing it twice is harmless."""
        ...

    def disable(self) -> bool:
        """Remove the entry the app wrote; True if something was removed."""
        ...

    def is_enabled(self) -> bool: ...
