"""Hooks other parts of the app plug into the tray UI (log window, runs, autostart).

Each is None until its feature is wired; the UI then shows the action disabled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class UiHooks:
    show_logs: Callable[[], None] | None = None
    process_now: Callable[[], None] | None = None
    autostart_enabled: Callable[[], bool] | None = None
    set_autostart: Callable[[bool], None] | None = None
