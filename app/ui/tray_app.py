"""TrayApp: the tray, its menu, the windows and the notifications around one AppCore.

It holds no business logic: it renders the core's state and calls the core's coroutines
on the qasync loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from app.config import Settings
from app.core.app_core import AppCore
from app.core.gpu.monitor import GpuMonitor
from app.core.gpu.probe import GpuProber
from app.core.gpu.snapshot import GpuSnapshot
from app.core.lifecycle.instance import InstanceEvent
from app.core.long_lived import FREEZE_AFTER_S, freeze_long_lived
from app.core.notices import Level, Notice
from app.core.servers.states import ServerState, StateEvent
from app.core.settings.settings_apply import apply_settings, not_yet
from app.core.settings.settings_file import update_settings_file
from app.core.summary import overall_state, tooltip
from app.paths import AppPaths
from app.platform.autostart import Autostart
from app.settings_load import SettingsError, load_settings
from app.ui.benchmark_window import BenchmarkWindow
from app.ui.check_window import CheckWindow
from app.ui.downloads_window import GetModelsWindow
from app.ui.hooks import UiHooks
from app.ui.log_window import LogWindowController
from app.ui.models_window import ModelsWindow
from app.ui.notifications import Notifier, TrayNotifier
from app.ui.preset_dialog import PresetDialog
from app.ui.runs_ui import RunsUi
from app.ui.settings_dialog import SettingsDialog
from app.ui.single_instance import InstanceServer
from app.ui.start_at_login import wire_start_at_login
from app.ui.tasks import spawn
from app.ui.tray import Tray
from app.ui.tray_menu import TrayMenu
from app.ui.verbs import model_verbs, window_verbs
from app.ui.windows import Windows

log = logging.getLogger(__name__)

TRAY_WAIT_SECONDS = 60.0
TRAY_RETRY_MS = 2000
EXTERNAL_CHECK_MS = 30_000
# Replies come up to hundreds a second: the tooltip and the window's speed cells follow them
# at most this often (one redraw for every reply in between).
SPEED_REDRAW_MS = 250


def warm_up_imports() -> None:
    """Import what the first load would import lazily (httpx's transport stack), in a worker
    thread at start-up, so the first load does not stall the UI for ~150 ms."""
    import anyio._backends._asyncio  # noqa: F401
    import h11  # noqa: F401
    import httpcore  # noqa: F401


class TrayApp(QObject):
    changed = Signal()  # the state the menu and windows show has changed
    tray_shown = Signal(bool)  # True once the icon is in the tray; False if it never appears

    def __init__(
        self,
        core: AppCore,
        paths: AppPaths,
        *,
        gpu_prober: GpuProber | None = None,
        tray_wait: float = TRAY_WAIT_SECONDS,
        autostart: Autostart | None = None,
        instance: InstanceServer | None = None,
        tray: Tray | None = None,
    ) -> None:
        super().__init__()
        self.core = core
        self.paths = paths
        self.hooks = UiHooks()
        self.run_in_progress = False
        self.logs = LogWindowController.for_settings(core, paths, core.settings)
        self.hooks.show_logs = self.logs.open
        self.runs_ui: RunsUi | None = None
        wire_start_at_login(self.hooks, core.notices, autostart)
        self.gpu_monitor = GpuMonitor(core.manager, gpu_prober or core.gpu)
        self.gpu_snapshot: GpuSnapshot | None = None
        self.menu = TrayMenu(self)
        if tray is None:
            tray = Tray(self.menu, self)
        else:  # the launcher showed the icon before the core was imported: adopt it
            tray.setParent(self)
            tray.set_menu(self.menu)
        self.tray = tray
        self.tray.clicked.connect(self.show_models)
        self.notifier: Notifier = TrayNotifier(self.tray.icon, self)
        self.windows = Windows(
            self,
            core,
            paths,
            apply_settings=self.apply_settings,
            preset_saved=self._preset_saved,
        )
        if core.runs is not None:
            self.runs_ui = RunsUi(self, core.runs, core.notices, self)
            self.hooks.process_now = self.runs_ui.process_now
        process_now = self.runs_ui.process_now if self.runs_ui is not None else None
        self.verbs = {
            **window_verbs(self.show_models, self.hooks, process_now),
            **model_verbs(core),
        }
        # The launcher's server (listening since before the set-up dialog) answers for
        # this app from now on; without one, start() listens on a new one.
        if instance is not None:
            instance.handlers = self.verbs
        self.instance = instance or InstanceServer(paths, self.verbs, self)
        self._tray_wait = tray_wait
        self._tray_deadline = 0.0
        self._tray_timer = QTimer(self)
        self._tray_timer.setInterval(TRAY_RETRY_MS)
        self._tray_timer.timeout.connect(self._try_show_tray)
        # Programs the app did not start, on its ports: looked for now and then (off the
        # UI thread) and whenever the menu opens, so the menu shows them as "external".
        self._external_timer = QTimer(self)
        self._external_timer.setInterval(EXTERNAL_CHECK_MS)
        self._external_timer.timeout.connect(self.refresh_external)
        self.menu.aboutToShow.connect(self.refresh_external)
        self._external_task: asyncio.Task | None = None
        self._speed_keys: set[str] = set()
        self._speed_timer = QTimer(self)
        self._speed_timer.setSingleShot(True)
        self._speed_timer.setInterval(SPEED_REDRAW_MS)
        self._speed_timer.timeout.connect(self._show_speed)
        self._quit = asyncio.Event()
        self._unsubs = [
            core.manager.subscribe(self._on_state),
            core.lifecycle.subscribe(self._on_instance),
            core.catalogue.subscribe(self._on_catalogue),
            self.gpu_monitor.subscribe(self._on_snapshot),
            core.notices.subscribe(self._on_notice),
            core.stats.subscribe(self._on_speed),
        ]
        if core.downloads is not None:  # progress in the tooltip
            self._unsubs.append(core.downloads.subscribe(self._render_state))
        for machines in (core.shared_worker, core.workers, core.peers):  # tooltip, window
            if machines is not None:
                self._unsubs.append(machines.subscribe(self._on_machines))

    # ── The windows (``Windows`` holds them) ──────────────────────────────────
    @property
    def models_window(self) -> ModelsWindow | None:
        return self.windows.models

    @property
    def benchmark_window(self) -> BenchmarkWindow | None:
        return self.windows.benchmark

    @property
    def get_models_window(self) -> GetModelsWindow | None:
        return self.windows.get_models

    @property
    def check_window(self) -> CheckWindow | None:
        return self.windows.check

    @property
    def settings_dialog(self) -> SettingsDialog | None:
        return self.windows.settings

    @property
    def preset_dialogs(self) -> dict[str, PresetDialog]:
        return self.windows.presets

    # ── Life cycle ────────────────────────────────────────────────────────────
    async def start(self, *, show_tray: bool = True, load_at_start: bool = True) -> None:
        self.instance.listen()
        # The icon first: everything else (the API, reaping, the folder scan, GPU probes)
        # starts right after it, so the user sees the app at once.
        self._render_state()
        if show_tray:
            self._tray_deadline = time.monotonic() + self._tray_wait
            if not self._try_show_tray():
                log.info("No system tray yet; retrying for %g s", self._tray_wait)
                self._tray_timer.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, warm_up_imports)
        await self.core.start()
        await self.gpu_monitor.start()
        self._external_timer.start()
        self._render_state()
        if load_at_start:
            spawn(self.core.load_at_start(), "Loading at start")

    async def run(self, **start_kw) -> int:
        """Start, live until ``quit()``, then stop every server and service."""
        try:
            await self.start(**start_kw)
            # the app's own run: start-up's objects out of the GC's way, once the icon is
            # drawn and the first events are handled (the collection first takes ~50 ms)
            asyncio.get_running_loop().call_later(FREEZE_AFTER_S, freeze_long_lived)
            await self._quit.wait()
        finally:
            await self.shutdown()
        return 0

    async def shutdown(self) -> None:
        log.info("Quitting: stopping every server")
        self._tray_timer.stop()
        self._external_timer.stop()
        self._speed_timer.stop()
        for unsub in self._unsubs:
            unsub()
        self._unsubs = []
        if self.runs_ui is not None:
            self.runs_ui.close()
        self.logs.close()
        await self.gpu_monitor.stop()
        await self.core.stop()
        self.instance.close()
        self.tray.hide()
        self.windows.close()

    def quit(self) -> None:
        self._quit.set()

    def _try_show_tray(self) -> bool:
        if QSystemTrayIcon.isSystemTrayAvailable():
            self._tray_timer.stop()
            self.tray.show()
            log.info("Tray icon shown")
            self.tray_shown.emit(True)
            return True
        if time.monotonic() >= self._tray_deadline:
            self._tray_timer.stop()
            self._no_tray()
        return False

    def _no_tray(self) -> None:
        log.warning("No system tray appeared within %g s", self._tray_wait)
        self.tray_shown.emit(False)
        self.show_models()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.lastWindowClosed.connect(self.quit)
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "FamilyLog Tray",
            "No system tray was found on this desktop, so the app cannot show its tray icon.\n"
            "The models window stays open instead: closing it quits the app and stops the "
            "servers. Install or enable a system tray (on GNOME: the AppIndicator extension) "
            "and start the app again to use the tray.",
            QMessageBox.StandardButton.Ok,
            self.models_window,
        )
        box.setModal(False)
        box.show()
        self._no_tray_box = box

    # ── Core events ───────────────────────────────────────────────────────────
    def _on_state(self, event: StateEvent) -> None:
        self._render_state()
        self.changed.emit()

    def _on_instance(self, event: InstanceEvent) -> None:
        if self.models_window is not None:
            self.models_window.on_instance(event)

    def _on_speed(self, key: str) -> None:
        """A model answered through the API (or its figures were reset): its speed shows in
        the tooltip and the window within ``SPEED_REDRAW_MS``, one redraw for all replies
        in between (a redraw builds the whole tooltip: ``bench/tooltip.py``)."""
        self._speed_keys.add(key)
        if not self._speed_timer.isActive():
            self._speed_timer.start()

    def _show_speed(self) -> None:
        keys, self._speed_keys = self._speed_keys, set()
        self._render_state()
        if self.models_window is not None:
            for key in sorted(keys):
                self.models_window.on_speed(key)

    def _on_catalogue(self) -> None:
        if self.models_window is not None:
            self.models_window.on_catalogue()
        self.changed.emit()

    def _on_machines(self) -> None:
        self._render_state()
        if self.models_window is not None:
            self.models_window.machines.refresh()

    def _on_snapshot(self, snapshot: GpuSnapshot) -> None:
        self.gpu_snapshot = snapshot
        self._render_state()
        if self.models_window is not None:
            self.models_window.on_snapshot(snapshot)

    def refresh_external(self) -> asyncio.Task | None:
        """Look again for foreign processes on the configured ports (one look at a time)."""
        if self._external_task is not None and not self._external_task.done():
            return None
        before = dict(self.core.external)

        async def look() -> None:
            found = await self.core.refresh_external()
            if found != before:
                self._after_action()

        self._external_task = spawn(look(), "Looking for external servers")
        return self._external_task

    def _on_notice(self, notice: Notice) -> None:
        self.notifier.notify(notice)
        if self.models_window is not None:
            self.models_window.on_notice(notice)

    def set_run_in_progress(self, running: bool) -> None:
        """For the runs feature: show the "run in progress" icon while a run lasts."""
        self.run_in_progress = running
        self._render_state()

    def refresh_tooltip(self) -> None:
        self._render_state()

    def after_run_change(self) -> None:
        """A run started, ended or changed state: the menu and windows show it."""
        self.changed.emit()

    def _render_state(self) -> None:
        self.tray.set_state(overall_state(self.core.manager.statuses(), self.run_in_progress))
        self.tray.set_tooltip(
            tooltip(
                self.core,
                self.gpu_snapshot,
                self.run_in_progress,
                self.gpu_monitor.server_memory,
            )
        )

    # ── Actions (menu, window) ────────────────────────────────────────────────
    def _spawn(self, coro, what: str) -> asyncio.Task:
        task = spawn(coro, what)
        task.add_done_callback(lambda _t: self._after_action())
        return task

    def _after_action(self) -> None:
        self._render_state()
        if self.models_window is not None:
            self.models_window.refresh()
        self.changed.emit()

    def load(self, key: str) -> asyncio.Task:
        """Load a model where placement puts it (the lifecycle loads it once, whoever asks)."""
        return self._spawn(self.core.lifecycle.ensure(key), f"Loading {key}")

    def unload(self, key: str) -> asyncio.Task:
        return self._spawn(self.core.lifecycle.unload(key), f"Unloading {key}")

    def cancel(self, key: str) -> asyncio.Task:
        """Stop a load under way (the models window's Cancel); its server is stopped."""
        return self._spawn(self.core.lifecycle.cancel_load(key), f"Cancelling the load of {key}")

    def rescan(self) -> asyncio.Task:
        """Read the model folders again; the task's result is the files that could not be
        read (the catalogue tells the windows about the new list; the rescanner tells the
        user what became of the files of running models)."""

        async def rescan() -> list[str]:
            return (await self.core.rescanner.rescan()).problems

        return self._spawn(rescan(), "Rescanning the model folders")

    def unload_ports(self, ports: tuple[int, ...]) -> asyncio.Task | None:
        ports = tuple(p for p in ports if not self.core.manager.is_busy(p))
        if not ports:
            return None

        async def unload() -> None:
            for p in ports:
                await self.core.lifecycle.unload_port(p)

        return self._spawn(unload(), f"Unloading {ports}")

    def unload_all(self) -> asyncio.Task:
        async def unload() -> None:
            await self.core.lifecycle.unload_all()
            for port, st in self.core.manager.statuses().items():
                if st.state is ServerState.FAILED:  # clear errors too
                    await self.core.manager.unload_model(port)

        return self._spawn(unload(), "Unloading all")

    def show_models(self) -> None:
        self.windows.show_models()

    def show_check(self) -> None:
        self.windows.show_check()

    def show_benchmark(self) -> None:
        self.windows.show_benchmark()

    def show_get_models(self) -> None:
        self.windows.show_get_models()

    def show_settings(self) -> None:
        self.windows.show_settings()

    def model_settings(self, key: str) -> None:
        self.windows.model_settings(key)

    def _preset_saved(self, key: str) -> list[str]:
        """A model's settings were saved: say whether its running server has the old ones."""
        inst = self.core.lifecycle.instance(key)
        self._after_action()
        if inst is not None and inst.stale:
            return ["It runs with the old settings until it is unloaded and loaded again."]
        return []

    def share_gpu(self, on: bool) -> asyncio.Task | None:
        """The tray's "Share this GPU with other machines": saved, and in effect at once."""
        if on == self.core.settings.RPC_WORKER_ENABLED:
            return None
        try:
            update_settings_file(
                self.paths.settings_file, {"RPC_WORKER_ENABLED": "true" if on else "false"}
            )
            new = load_settings(self.paths)
        except (OSError, SettingsError) as e:
            self.core.notices.emit(Notice(Level.ERROR, "Share this GPU", str(e)))
            return None
        return self._spawn(self.apply_settings(new), "Share this GPU")

    async def apply_settings(self, new: Settings) -> list[str]:
        """Settings… saved ``new``: the core applies them; the log window's length too."""
        lines = await apply_settings(self.core.live, self.core.lifecycle, new)
        self.logs.set_max_lines(new.LOG_VIEW_MAX_LINES)
        later = not_yet(lines)  # told again after OK has closed the dialog
        if later:
            self.core.notices.emit(Notice(Level.INFO, "Settings saved", " ".join(later)))
        self._after_action()
        return lines
