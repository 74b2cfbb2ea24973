"""Start the tray app: a QApplication driven by qasync, the core on the same loop.

Order: a running instance answers first (``--show`` forwarded, exit 0); then no display at
all ends the launch with exit 2 before Qt is touched; then the single-instance lock is taken
(``InstanceServer.listen``) before any window, so a second launch while the set-up dialog
is open brings that dialog to the front; then the tray icon ("Starting…"), before the
settings are even read (pydantic is most of the imports before it); then the settings (an
invalid file ends the launch with exit 2 and the message), the set-up dialog (only when
the settings lack a working llama-server or a model file), the core and the tray's menu.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from app.exit_codes import ExitCode
from app.paths import AppPaths

if TYPE_CHECKING:
    import asyncio

    from PySide6.QtWidgets import QWidget

    from app.core.notices import Notice
    from app.ui.tray_app import TrayApp

log = logging.getLogger(__name__)

# Qt platforms that need no display server.
HEADLESS_PLATFORMS = frozenset(
    {"offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay"}
)


def display_problem(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """One line when the tray cannot show anywhere (Linux/BSD with neither ``DISPLAY`` nor
    ``WAYLAND_DISPLAY``, and no display-free ``QT_QPA_PLATFORM``); None when it can."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip().lower()
    if qpa in HEADLESS_PLATFORMS:
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return (
        "familylog-tray: no display to show the tray on (DISPLAY and WAYLAND_DISPLAY are not "
        "set); run `familylog-tray --headless` to serve the API without a tray, or start it "
        "from a desktop session."
    )


class StartingUp:
    """The answers to other launches before the tray app exists (the set-up dialog may be
    open): ``show`` brings the dialog to the front, the rest ask to try again later."""

    def __init__(self) -> None:
        self.dialog: QWidget | None = None
        self.handlers = {
            "show": self.show,
            "logs": self.not_yet,
            "process-now": self.not_yet,
            "load": self.not_yet,
            "unload": self.not_yet,
            "rescan": self.not_yet,
        }

    def opened(self, dialog: QWidget | None) -> None:
        self.dialog = dialog
        if dialog is not None:
            log.info("Set-up dialog open; another launch brings it to the front")

    def show(self) -> str:
        if self.dialog is None:
            return "ok: the app is starting; its tray icon appears in a moment"
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        log.info("Another launch: the set-up dialog is brought to the front")
        return "ok: the set-up dialog is open and now in front; finish setting up there"

    def not_yet(self, **_args: object) -> str:
        doing = "is being set up (its set-up dialog is open)" if self.dialog else "is starting"
        return f"error: the app {doing}; try again once its tray icon is there"


def run_gui(args: argparse.Namespace, paths: AppPaths) -> int:
    """Run the tray app until Quit (or SIGINT/SIGTERM); every server it started is stopped."""
    from PySide6.QtWidgets import QApplication

    # A second launch without a verb: tell the running instance to show itself, then exit.
    answered = _already_running(paths)
    if answered is not None:
        return answered

    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return ExitCode.NO_DISPLAY

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("familylog-tray")
    app.setApplicationDisplayName("FamilyLog Tray")
    app.setQuitOnLastWindowClosed(False)
    loop: asyncio.AbstractEventLoop | None = None

    def qt_loop() -> asyncio.AbstractEventLoop:
        """The qasync loop, made when first needed (qasync and asyncio cost ~100 ms before the
        icon)."""
        nonlocal loop
        if loop is None:
            import asyncio

            import qasync

            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
        return loop

    # One app per home (the tray, --headless, a one-off --process-now): the home's lock.
    from app.home_lock import HomeLock, no_window, refusal

    home = HomeLock(paths)
    holder = home.acquire("tray")
    if holder is not None:
        answered = _already_running(paths) if holder.mode == "tray" else None
        if answered is not None:
            return answered
        windowless = holder.mode == "headless" and (args.show or args.logs)
        print(no_window(holder) if windowless else refusal(holder, paths), file=sys.stderr)
        return ExitCode.REFUSED
    try:
        return _run_locked(args, paths, app, qt_loop)
    finally:
        home.release()


def _run_locked(args, paths: AppPaths, app, qt_loop) -> int:
    """The rest of ``run_gui``, with the app home held: the icon first, then the settings."""
    from PySide6.QtCore import QSocketNotifier

    from app.ui.single_instance import InstanceServer

    # The single-instance lock, before any window: from here on another launch is answered.
    starting = StartingUp()
    instance = InstanceServer(paths, starting.handlers)
    if not instance.listen() and instance.other_instance:  # another launch took it just now
        answered = _already_running(paths)
        return answered if answered is not None else ExitCode.OK

    # The icon now, before the settings, the core, the API, the windows and even the app's
    # log (logging.handlers) are imported.
    early = early_icon()
    from app.core.logs.app_logging import follow_log_limits, setup_logging

    setup_logging(paths.app_log_file)  # the settings' limits once they are read
    if early is not None:
        log.info("Tray icon shown while starting")

    from app.settings_load import SettingsError, load_settings

    try:
        settings = load_settings(paths)
    except SettingsError as e:
        print(f"familylog-tray: {e}", file=sys.stderr)
        return ExitCode.USAGE
    follow_log_limits(lambda: (settings.LOG_MAX_BYTES, settings.LOG_BACKUPS))

    # First run: llama-server or both models unusable. Not when started at login: that
    # start stays quiet, and the tray menu offers Settings instead.
    from app.core.settings.first_run import first_run_reasons, settings_origin
    from app.settings_load import settings_warnings

    reasons = first_run_reasons(settings, paths)
    origin = None
    if reasons and not args.autostart:
        from app.ui.first_run import run_first_run

        log.info("Opening the set-up dialog: %s", " ".join(reasons))
        saved = qt_loop().run_until_complete(
            run_first_run(settings, paths, on_open=starting.opened)
        )
        if saved:
            try:
                settings = load_settings(paths)
            except SettingsError as e:
                print(f"familylog-tray: {e}", file=sys.stderr)
                return ExitCode.USAGE
    elif not reasons and not paths.settings_file.is_file():
        # The environment or FamilyLog's .env has it all: no dialog, but say where from.
        origin = settings_origin(settings, paths)
        log.info("%s", origin)

    from app.core.bootstrap import build_core
    from app.core.notices import Level, Notice
    from app.ui.tray_app import TrayApp

    loop = qt_loop()
    core = build_core(settings, paths)
    tray_app = TrayApp(core, paths, instance=instance, tray=early)
    if origin is not None:
        announce_when_shown(tray_app, Notice(Level.INFO, "Settings found", origin))
    for warning in settings_warnings(paths):
        log.warning("%s", warning)
        announce_when_shown(tray_app, Notice(Level.WARNING, "A setting is set twice", warning))

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


def early_icon():
    """The tray icon in its idle look with a "Starting…" menu, shown at once when a tray
    exists; the tray app adopts it. None without a tray (the app then waits for one)."""
    from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

    from app.ui.tray import Tray

    if not QSystemTrayIcon.isSystemTrayAvailable():
        return None
    menu = QMenu()
    menu.addAction("Starting…").setEnabled(False)
    tray = Tray(menu)
    tray.set_tooltip("Starting…")
    tray.show()
    QApplication.processEvents()  # hand the icon to the tray host now
    return tray


def announce_when_shown(tray_app: TrayApp, notice: Notice) -> None:
    """Emit ``notice`` once, when the tray icon is up (a balloon needs it) or known absent
    (then the log and the models window carry it)."""

    def tell(_shown: bool) -> None:
        tray_app.tray_shown.disconnect(tell)
        tray_app.core.notices.emit(notice)

    tray_app.tray_shown.connect(tell)


def _already_running(paths: AppPaths) -> int | None:
    """Ask a running instance to show itself; the exit code, or None when none answers."""
    from app.ui.single_instance import Reply, forward

    line = forward("show", paths)
    if line is None:
        return None
    reply = Reply.parse(line)
    print(f"familylog-tray is already running: {reply.message}.")
    return ExitCode.OK if reply.ok else ExitCode.REFUSED
