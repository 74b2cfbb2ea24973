"""A command for the app already running on this home: sent over the tray's
single-instance channel, else through a headless app's API (at the address it published
with its hold on the home, ``app.home_lock``). The command line never touches the running
app's servers itself."""

from __future__ import annotations

import sys

from app.config import Settings
from app.core.api.client import AppNotRunningError, call, error_message
from app.exit_codes import ExitCode
from app.home_lock import Holder, no_window, running_app
from app.paths import AppPaths


def forward_verb(verb: str, settings: Settings, paths: AppPaths) -> int | None:
    """``--show`` / ``--logs`` / ``--process-now`` for the running app: the exit code once
    it answered (or refused), None when no app runs on this home."""
    from app.ui.single_instance import forward

    reply = forward(verb, paths)
    if reply is not None:
        print(reply)
        return ExitCode.REFUSED if reply.startswith("error:") else ExitCode.OK
    holder = running_app(paths)
    if holder is None:
        return None
    if holder.mode in ("tray", "unknown"):  # it holds the home, its channel is not up (yet)
        print(
            f"familylog-tray: {holder.describe()} runs on this app home but did not answer; "
            "try again in a moment.",
            file=sys.stderr,
        )
        return ExitCode.REFUSED
    if verb != "process-now":
        print(no_window(holder), file=sys.stderr)
        return ExitCode.REFUSED
    return process_now_through_api(settings, holder)


def process_now_through_api(s: Settings, holder: Holder) -> int:
    """Ask a headless app (or a one-off ``--process-now``) to start a run."""
    if not holder.api_url:
        print(
            f"familylog-tray: {holder.describe()} runs on this app home and serves no API "
            "(API_ENABLED=false), so the run cannot be handed to it. Wait until it ends, or "
            "start it with the API on.",
            file=sys.stderr,
        )
        return ExitCode.REFUSED
    try:
        status, answer = call(s, "/api/v0/runs", {}, base=holder.api_url)
    except AppNotRunningError as e:
        print(f"familylog-tray: {holder.describe()} did not answer: {e}", file=sys.stderr)
        return ExitCode.REFUSED
    if status == 202:
        print(f"ok: asked {holder.describe()}: {answer.get('message', 'run started')}")
        return ExitCode.OK
    print(f"error: {error_message(answer)}", file=sys.stderr)
    return ExitCode.REFUSED


def api_base(paths: AppPaths) -> str | None:
    """The API address the app running on this home published, if any."""
    holder = running_app(paths, wait=0.5)
    return holder.api_url if holder is not None else None
