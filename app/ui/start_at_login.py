"""The tray's "Start at login" toggle: this OS's autostart entry, turned on and off from the
menu, with a notice when that fails."""

from __future__ import annotations

import logging

from app.core.notices import Level, Notice, NoticeBus
from app.platform.autostart import Autostart, AutostartError, autostart_for
from app.ui.hooks import UiHooks

log = logging.getLogger(__name__)


def wire_start_at_login(hooks: UiHooks, notices: NoticeBus, entry: Autostart | None) -> None:
    """Plug this OS's entry (``entry``, else the one ``autostart_for`` finds) into ``hooks``;
    without one the menu's toggle stays disabled."""
    try:
        found = entry or autostart_for()
    except AutostartError as e:
        log.info("Start at login unavailable: %s", e)
        return

    def set_autostart(on: bool) -> None:
        try:
            if on:
                found.enable()
            else:
                found.disable()
        except (AutostartError, OSError) as e:
            notices.emit(Notice(Level.ERROR, "Start at login", f"{e} ({found.location})"))
            return
        state = "on" if found.is_enabled() else "off"
        log.info("Start at login turned %s (%s)", state, found.location)

    hooks.autostart_enabled = found.is_enabled
    hooks.set_autostart = set_autostart
