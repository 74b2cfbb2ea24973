"""``familylog-tray --process-now`` with no instance running: one run, headless.

The core starts with its services (the LM Studio-compatible API, when attached, so an
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
from app.paths import AppPaths


async def run_once_headless(settings: Settings, paths: AppPaths) -> int:
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
