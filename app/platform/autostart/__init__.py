"""Start at login: one small class per OS, picked at run time, injectable in tests.

    entry = autostart_for()          # this OS, this user, this way of running the app
    entry.enable(); entry.is_enabled(); entry.disable(); entry.location

``app.cli.start_at_login`` is ``familylog-tray --start-at-login on|off|status``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .base import APP_ID, AUTOSTART_FLAG, Autostart, AutostartError
from .launch_command import launch_command
from .linux import XdgAutostart, xdg_config_home
from .macos import LaunchAgent
from .windows import WindowsRunKey

__all__ = [
    "APP_ID",
    "AUTOSTART_FLAG",
    "Autostart",
    "AutostartError",
    "LaunchAgent",
    "WindowsRunKey",
    "XdgAutostart",
    "autostart_for",
    "launch_command",
]


def autostart_for(
    platform: str | None = None,
    *,
    home: Path | None = None,
    config_home: Path | None = None,
    command: list[str] | None = None,
    registry: Any | None = None,
) -> Autostart:
    """The start-at-login entry for ``platform`` (default: this one)."""
    platform = platform or sys.platform
    command = command or launch_command(windows=platform == "win32")
    if platform == "win32":
        return WindowsRunKey(command, registry)
    if platform == "darwin":
        return LaunchAgent(command, home or Path(os.environ.get("HOME") or Path.home()))
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return XdgAutostart(command, config_home or xdg_config_home())
    raise AutostartError(f"Start at login is not supported on {platform}.")
