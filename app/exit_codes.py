"""The exit codes of ``familylog-tray``, one place for all its commands (the README lists
them). A FamilyLog run (``--process-now``) exits with the run's own code instead
(``cli_exit_code`` of its record: FamilyLog's code, 124 timed out, 130 cancelled)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done, also when there was nothing to do
    REFUSED = 1  # the running app refused: unknown model, failed load, still being set up
    FAILED = 1  # the command ran and failed: a benchmark broke off, start at login failed
    USAGE = 2  # bad arguments or settings (argparse exits 2 too)
    NO_DISPLAY = 2  # the tray has no display to show on (`--headless` needs none)
    NOT_RUNNING = 3  # --load, --unload, --ps, --benchmark or --download found no running app
    INTERRUPTED = 130  # Ctrl+C: --download stops watching (the download goes on in the app)
