"""Start the tray app: a QApplication driven by qasync, the core on the same loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

from app.config import Settings
from app.paths import AppPaths

log = logging.getLogger(__name__)


def run_gui(args: argparse.Namespace, settings: Settings, paths: AppPaths) -> int:
    """Run the tray app until Quit (or SIGINT/SIGTERM); every server it started is stopped."""
    import qasync
    from PySide6.QtCore import QSocketNotifier
    from PySide6.QtWidgets import QApplication

    from app.core.bootstrap import build_core
    from app.core.logs.app_logging import setup_logging
    from app.ui.single_instance import forward
    from app.ui.tray_app import TrayApp

    # A second launch without a verb: tell the running instance to show itself, then exit.
    if forward("show", paths) is not None:
        print("familylog-tray is already running; its models window is now open.")
        return 0

    setup_logging(
        paths.app_log_file, max_bytes=settings.LOG_MAX_BYTES, backups=settings.LOG_BACKUPS
    )
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("familylog-tray")
    app.setApplicationDisplayName("FamilyLog Tray")
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    # First run: no settings file, or llama-server / both models unusable. Not when started
    # at login: that start stays quiet, and the tray menu offers Settings instead.
    if not args.autostart:
        from app.config import SettingsError, load_settings
        from app.core.settings.first_run import first_run_reasons
        from app.ui.first_run import run_first_run

        reasons = first_run_reasons(settings, paths)
        if reasons:
            log.info("Opening the set-up dialog: %s", " ".join(reasons))
            if loop.run_until_complete(run_first_run(settings, paths)):
                try:
                    settings = load_settings(paths)
                except SettingsError as e:
                    print(f"familylog-tray: {e}", file=sys.stderr)
                    return 2

    core = build_core(settings, paths)
    tray_app = TrayApp(core, paths)

    # SIGINT / SIGTERM: quit cleanly (stop the servers). Python runs signal handlers only
    # when the interpreter gets control, so the wake-up fd pokes the Qt loop.
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    old_fd = signal.set_wakeup_fd(wsock.fileno())
    notifier = QSocketNotifier(rsock.fileno(), QSocketNotifier.Type.Read)

    def drain() -> None:
        try:
            rsock.recv(64)
        except OSError:
            pass

    notifier.activated.connect(drain)
    old_handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old_handlers[sig] = signal.signal(sig, lambda *_: loop.call_soon_threadsafe(tray_app.quit))

    async def main() -> int:
        if args.show:
            tray_app.show_models()
        if args.logs and tray_app.hooks.show_logs is not None:
            tray_app.hooks.show_logs()
        return await tray_app.run()

    try:
        with loop:
            code = loop.run_until_complete(main())
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        notifier.setEnabled(False)
        rsock.close()
        wsock.close()
    log.info("Exited cleanly")
    return code
