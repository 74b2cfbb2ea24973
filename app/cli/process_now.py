"""``familylog-tray --process-now`` with no instance running: one run, headless.

It holds the app home while it runs (``app.home_lock``): another ``--process-now`` or a
``--headless`` started meanwhile hands its request to this one. The core starts with its services (the LM Studio-compatible API, when attached, so an
unmigrated FamilyLog finds its models) but without the schedule; the run's output is
printed as it comes; the exit code is the run's. Ctrl+C cancels the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from app.config import Settings
from app.core.bootstrap import build_core
from app.core.notices import Notice
from app.exit_codes import ExitCode
from app.home_lock import HomeLock, refusal
from app.paths import AppPaths


async def run_once_headless(settings: Settings, paths: AppPaths) -> int:
    lock = HomeLock(paths)
    holder = lock.acquire("process-now")
    if holder is not None:  # an app started on this home meanwhile: hand the run to it
        from app.cli.running_app import forward_verb

        code = forward_verb("process-now", settings, paths)
        if code is not None:
            return code
        print(refusal(holder, paths), file=sys.stderr)
        return ExitCode.REFUSED
    try:
        return await _run_once(settings, paths, lock)
    finally:
        lock.release()


async def _run_once(settings: Settings, paths: AppPaths, lock: HomeLock) -> int:
    core = build_core(settings, paths, schedule=False)
    runs = core.runs
    loop = asyncio.get_running_loop()

    def show(lines: list[str]) -> None:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

    def tell(n: Notice) -> None:
        print(f"familylog-tray: {n.title}: {n.text}", file=sys.stderr, flush=True)

    runs.subscribe_output(show)
    core.notices.subscribe(tell)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, runs.cancel)
    record = None
    try:
        await core.start()
        lock.serving(core.api_url() if core.api is not None and core.api.running else None)
        result = runs.process_now("command line")
        record = await result.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await core.stop()
    if record is None:  # refused before it started (a run already under way)
        return ExitCode.FAILED
    print(f"familylog-tray: run log: {record.log_file}", file=sys.stderr, flush=True)
    return record.cli_exit_code()
