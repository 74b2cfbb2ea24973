"""``familylog-tray --load KEY [--ctx N]`` / ``--unload KEY|all`` on the command line: ask
the running tray (over the single-instance channel; it answers with
``app.core.lifecycle.commands`` once the load is done), else a ``--headless`` app through its
API; print the answer and exit like ``lms``. They never start the app."""

from __future__ import annotations

import argparse
import sys

from app.cli.running_app import api_base
from app.config import Settings
from app.core.api.client import AppNotRunningError, call, error_message
from app.exit_codes import ExitCode
from app.paths import AppPaths


def model_command(args: argparse.Namespace, settings: Settings, paths: AppPaths) -> int:
    """``--load`` / ``--unload``: ask the running app, print its answer."""
    from app.ui.single_instance import NoAnswerError, request

    if args.load is not None:
        verb, request_args = "load", {"key": args.load, "ctx": args.ctx}
        wait = settings.LLAMA_READY_TIMEOUT + settings.EVICT_WAIT_SECONDS + 30
    else:
        verb, request_args = "unload", {"key": args.unload}
        wait = settings.EVICT_WAIT_SECONDS + 30
    try:
        reply = request(verb, paths, request_args, timeout=2.0, reply_timeout=wait)
    except NoAnswerError:
        print(
            f"familylog-tray: the running app did not answer within {wait:g} s; the {verb} "
            "may still be under way (see the tray or the models window).",
            file=sys.stderr,
        )
        return ExitCode.REFUSED
    if reply is None:  # no tray: a --headless app answers through its API
        try:
            return through_api(settings, verb, request_args["key"], args.ctx, wait, api_base(paths))
        except AppNotRunningError:
            pass
        print(
            "familylog-tray is not running, so there is nothing to "
            f"{verb} the model in. Start it first (run `familylog-tray`, or from your "
            "applications menu), then try again.",
            file=sys.stderr,
        )
        return ExitCode.NOT_RUNNING
    if reply.ok:
        print(reply.message)
        return ExitCode.OK
    print(f"familylog-tray: {reply.message}", file=sys.stderr)
    return ExitCode.REFUSED


def through_api(
    s: Settings, verb: str, key: str, ctx: int | None, wait: float, base: str | None = None
) -> int:
    """``--load`` / ``--unload`` through the API of an app with no tray (``--headless``, at
    ``base`` when it published one); raises ``AppNotRunningError`` when nothing answers there. An
    unload is checked afterwards: a model still listed is an error (exit 1), named."""
    if verb == "load":
        body: dict = {"model": key}
        if ctx is not None:
            body["context_length"] = ctx
        status, answer = call(s, "/api/v1/models/load", body, timeout=wait, base=base)
        if status != 200:
            print(f"familylog-tray: {error_message(answer)}", file=sys.stderr)
            return ExitCode.REFUSED
        took = answer.get("load_time_seconds") or 0
        ctx_now = (answer.get("config") or {}).get("context_length")
        print(
            f"Loaded {key}"
            + (f" in {took:g} s" if took else " (it was loaded already)")
            + (f" (context {ctx_now} tokens)" if ctx_now else "")
        )
        return ExitCode.OK
    keys = _loaded(s, base) if key == "all" else [key]
    for k in keys:
        status, answer = call(
            s, "/api/v1/models/unload", {"instance_id": k}, timeout=wait, base=base
        )
        if status != 200 and not (key == "all" and status == 404):
            print(f"familylog-tray: {error_message(answer)}", file=sys.stderr)
            return ExitCode.REFUSED
    left = [k for k in _loaded(s, base) if key == "all" or k == key]
    if left:
        print(
            f"familylog-tray: could not unload {', '.join(left)}: still running (see the log).",
            file=sys.stderr,
        )
        return ExitCode.REFUSED
    print(f"Unloaded {', '.join(keys)}" if keys else "No models were loaded; nothing to do.")
    return ExitCode.OK


def _loaded(s: Settings, base: str | None) -> list[str]:
    """The keys of the models the app runs now (``GET /api/v0/ps``)."""
    status, answer = call(s, "/api/v0/ps", base=base)
    return [m["key"] for m in answer.get("models") or []] if status == 200 else []
