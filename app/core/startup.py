"""What ``--autostart`` does once the GUI is up: wait for the tray, then load the models the
user marked "load at start". Qt-free: the UI passes its own wait-for-tray coroutine."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class StartupCore(Protocol):
    async def load_startup_profiles(self) -> None: ...


async def autostart_sequence(
    core: StartupCore, wait_for_tray: Callable[[], Awaitable[bool]] | None = None
) -> bool:
    """Wait for the system tray (when a waiter is given), then load the "load at start"
    profiles; failures reach the user as notices (``AppCore`` reports them). Returns whether
    the tray became available; the models are loaded either way."""
    tray = True
    if wait_for_tray is not None:
        tray = await wait_for_tray()
        if not tray:
            log.warning("Started at login but no system tray appeared; loading models anyway")
    await core.load_startup_profiles()
    return tray
