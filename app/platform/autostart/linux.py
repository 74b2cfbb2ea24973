"""Linux and other freedesktop systems: an XDG autostart ``.desktop`` entry."""

from __future__ import annotations

import configparser
import io
import os
from pathlib import Path

from app import __version__

from .base import APP_ID, APP_TITLE, remove_own_file, write_entry_file

SECTION = "Desktop Entry"
MARKER = "X-FamilyLog-Tray"  # says the file is ours, so disable() never removes another's
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def exec_quote(arg: str) -> str:
    """Quote one argument by the Desktop Entry spec's rules for ``Exec``."""
    if arg and not (_RESERVED & set(arg)):
        return arg.replace("%", "%%")
    inner = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return '"' + inner.replace("%", "%%") + '"'


def exec_line(command: list[str]) -> str:
    """The ``Exec`` value as written to the file (string escapes applied: ``\\`` doubled)."""
    return " ".join(exec_quote(a) for a in command).replace("\\", "\\\\")


def xdg_config_home(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    value = env.get("XDG_CONFIG_HOME", "")
    if value and Path(value).is_absolute():  # the spec says to ignore a relative value
        return Path(value)
    return Path(env.get("HOME") or Path.home()) / ".config"


def _parser() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    return cp


class XdgAutostart:
    """``$XDG_CONFIG_HOME/autostart/familylog-tray.desktop``."""

    def __init__(self, command: list[str], config_home: Path, *, delay_s: int = 5) -> None:
        self.command = command
        self.path = config_home / "autostart" / f"{APP_ID}.desktop"
        self.delay_s = delay_s

    @property
    def location(self) -> str:
        return str(self.path)

    def render(self) -> str:
        cp = _parser()
        cp[SECTION] = {
            "Type": "Application",
            "Version": "1.0",
            "Name": APP_TITLE,
            "Comment": "Manages llama-server models from the system tray",
            "Exec": exec_line(self.command),
            "Icon": APP_ID,
            "Terminal": "false",
            "Categories": "Utility;",
            "X-GNOME-Autostart-enabled": "true",
            "X-GNOME-Autostart-Delay": str(self.delay_s),
            MARKER: __version__,
        }
        buf = io.StringIO()
        cp.write(buf, space_around_delimiters=False)
        return buf.getvalue()

    def _read(self) -> configparser.SectionProxy | None:
        if not self.path.is_file():
            return None
        cp = _parser()
        try:
            cp.read_string(self.path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, configparser.Error):
            return None
        return cp[SECTION] if cp.has_section(SECTION) else None

    def enable(self) -> None:
        write_entry_file(self.path, self.render(), "autostart entry")

    def disable(self) -> bool:
        entry = self._read()
        return remove_own_file(self.path, entry is not None and MARKER in entry)

    def is_enabled(self) -> bool:
        entry = self._read()
        if entry is None:
            return False
        if entry.get("Hidden", "false").strip().lower() == "true":
            return False
        return entry.get("X-GNOME-Autostart-enabled", "true").strip().lower() != "false"
