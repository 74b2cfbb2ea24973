"""The ``familylog-tray`` command: parse the arguments and hand over to the right part.

- ``--version``: print the version.
- ``--start-at-login on|off|status``: no app needed (``app.platform.autostart``).
- ``--show`` / ``--logs`` / ``--process-now``: forwarded to the running instance when
  there is one (``app.ui.single_instance``); otherwise ``--process-now`` runs once headless
  and the others start the tray with that window open.
- ``--headless``: the core without Qt until SIGINT/SIGTERM.
- no arguments (or ``--autostart``): the tray app (``app.ui.launch``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from app import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="familylog-tray",
        description="A system-tray manager for llama-server, a drop-in for LM Studio.",
    )
    p.add_argument("--version", action="version", version=f"familylog-tray {__version__}")
    p.add_argument("--headless", action="store_true", help="run the core without Qt")
    p.add_argument("--show", action="store_true", help="open the models window")
    p.add_argument("--logs", action="store_true", help="open the log window")
    p.add_argument("--process-now", action="store_true", help="start a FamilyLog run")
    p.add_argument("--autostart", action="store_true", help="started at login: stay quiet")
    p.add_argument(
        "--start-at-login",
        choices=["on", "off", "status"],
        help="turn starting at login on or off, or show its state",
    )
    return p


def forwarded_verb(args: argparse.Namespace) -> str | None:
    if args.process_now:
        return "process-now"
    if args.logs:
        return "logs"
    if args.show:
        return "show"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from app.config import SettingsError, load_settings
    from app.core.logs.app_logging import setup_logging
    from app.paths import AppHomeError, AppPaths

    if args.start_at_login:
        from app.platform.autostart import autostart_cli

        return autostart_cli(args.start_at_login)

    try:
        paths = AppPaths.resolve().ensure()
        settings = load_settings(paths)
    except (SettingsError, AppHomeError) as e:
        print(f"familylog-tray: {e}", file=sys.stderr)
        return 2

    verb = forwarded_verb(args)
    if verb and not args.headless:
        from app.ui.single_instance import forward

        reply = forward(verb, paths)
        if reply is not None:
            print(reply)
            return 0
        if verb == "process-now":
            setup_logging(
                paths.app_log_file, max_bytes=settings.LOG_MAX_BYTES, backups=settings.LOG_BACKUPS
            )
            from app.core.runs.cli import run_once_headless

            return asyncio.run(run_once_headless(settings, paths))

    if args.headless:
        setup_logging(
            paths.app_log_file, max_bytes=settings.LOG_MAX_BYTES, backups=settings.LOG_BACKUPS
        )
        from app.core.headless import run_headless

        return asyncio.run(run_headless(settings, paths))

    from app.ui.launch import run_gui

    return run_gui(args, settings, paths)


if __name__ == "__main__":
    sys.exit(main())
