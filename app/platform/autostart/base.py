"""What every start-at-login entry offers, whatever the OS."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from app.atomic import write_atomic

APP_ID = "familylog-tray"
APP_TITLE = "FamilyLog Tray"
AUTOSTART_FLAG = "--autostart"


class AutostartError(RuntimeError):
    """The entry cannot be written, read or removed; the message says what to do."""


def write_entry_file(path: Path, text: str, what: str) -> None:
    """Write an autostart entry file atomically; ``what`` names it in the error."""
    try:
        write_atomic(path, text)
    except OSError as e:
        raise AutostartError(
            f"Cannot write the {what} {path}: {e.strerror or e}. "
            f"Check that {path.parent} is writable."
        ) from e


def remove_own_file(path: Path, ours: bool) -> bool:
    """Remove an entry file the app wrote (``ours``); refuse one it did not write.
    True if something was removed."""
    if not path.exists():
        return False
    if not ours:
        raise AutostartError(
            f"{path} was not written by {APP_TITLE}; it was left in place. "
            "Remove it by hand if you do not want it."
        )
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise AutostartError(f"Cannot remove {path}: {e.strerror or e}.") from e
    return True


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
