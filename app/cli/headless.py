"""``familylog-tray --headless``: the core without Qt, until SIGINT or SIGTERM; refused
(naming the running app) when another app runs on the same home."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from app.cli.stop_signals import stop_on_signals
from app.config import Settings
from app.core.bootstrap import build_core
from app.core.long_lived import freeze_long_lived
from app.exit_codes import ExitCode
from app.home_lock import HomeLock, refusal
from app.paths import AppPaths
from app.settings_load import settings_warnings

log = logging.getLogger(__name__)


async def run_headless(
    settings: Settings, paths: AppPaths, ready: asyncio.Event | None = None
) -> int:
    lock = HomeLock(paths)
    holder = lock.acquire("headless")
    if holder is not None:  # one app per home: the running one is left alone
        print(refusal(holder, paths), file=sys.stderr)
        return ExitCode.REFUSED
    for warning in settings_warnings(paths):
        log.warning("%s", warning)
    core = build_core(settings, paths)
    with stop_on_signals() as stop:
        try:
            await core.start()
            lock.serving(core.api_url() if core.api is not None and core.api.running else None)
            await core.load_at_start()
            freeze_long_lived()  # start-up's objects out of the GC's full passes
            log.info("Headless core running (PID %d); SIGINT or SIGTERM stops it", os.getpid())
            print("familylog-tray: running headless; press Ctrl+C to stop", flush=True)
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("Stopping")
        finally:
            await core.stop()
            lock.release()
    return ExitCode.OK
