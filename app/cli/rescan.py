"""``familylog-tray --rescan``: the running app reads its model folders again (a model file
moved, added or removed) and says what changed: over the tray's single-instance channel,
else through a headless app's API (``POST /api/v0/models/rescan``). It never starts the app."""

from __future__ import annotations

import sys

from app.cli.running_app import api_base
from app.config import Settings
from app.core.api.client import AppNotRunningError, call, error_message
from app.exit_codes import ExitCode
from app.paths import AppPaths


def rescan_command(settings: Settings, paths: AppPaths) -> int:
    from app.ui.single_instance import NoAnswerError, request

    try:
        reply = request("rescan", paths, timeout=2.0, reply_timeout=120)
    except NoAnswerError:
        print("familylog-tray: the running app did not answer the rescan in time.", file=sys.stderr)
        return ExitCode.REFUSED
    if reply is not None:
        print(reply.message if reply.ok else f"familylog-tray: {reply.message}")
        return ExitCode.OK if reply.ok else ExitCode.REFUSED
    try:
        status, answer = call(
            settings, "/api/v0/models/rescan", {}, timeout=120, base=api_base(paths)
        )
    except AppNotRunningError:
        print(
            "familylog-tray is not running, so there is nothing to rescan. Start it first "
            "(`familylog-tray`, or `familylog-tray --headless`), then try again.",
            file=sys.stderr,
        )
        return ExitCode.NOT_RUNNING
    if status != 200:
        print(f"familylog-tray: {error_message(answer)}", file=sys.stderr)
        return ExitCode.REFUSED
    print(f"Rescanned the model folders: {answer.get('message', '')}.")
    return ExitCode.OK
