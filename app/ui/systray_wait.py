"""At login the tray host may start after the app: wait until it is there (with a deadline)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from PySide6.QtWidgets import QSystemTrayIcon


async def wait_for_system_tray(
    timeout: float = 60.0,
    interval: float = 0.5,
    available: Callable[[], bool] = QSystemTrayIcon.isSystemTrayAvailable,
) -> bool:
    """True as soon as a system tray is available; False if none appeared within ``timeout``.
    Runs on the qasync loop, so the GUI stays responsive while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        if available():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
