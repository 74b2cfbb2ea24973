"""The log window: one tab per llama-server port, one for FamilyLog runs, one for the app.

``LogWindowController`` holds at most one window: the tray's "Show logs…" and the
``logs`` single-instance verb call ``controller.open()``; the Process-now code calls
``controller.show_run_log(path, title)`` (and/or ``append_run_lines``) when a run starts.
Closing the window stops every follower; opening it again starts fresh ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from app.core.logs.app_logging import installed_log_file
from app.core.models.catalogue import Catalogue
from app.core.servers.states import ServerState, ServerStatus, StateEvent
from app.paths import AppPaths
from app.ui.log_pane import LogPane

log = logging.getLogger(__name__)

APP_TAB = "app"
RUN_TAB = "run"
RUN_TITLE = "FamilyLog run"
_SERVER_LOG = re.compile(r"llama-server-(\d+)\.log")


class _Manager(Protocol):
    def subscribe(self, callback: Callable[[StateEvent], None]) -> Callable[[], None]: ...
    def statuses(self) -> dict[int, ServerStatus]: ...
    def log_path(self, port: int) -> Path: ...


class _Core(Protocol):
    """What the window needs of ``AppCore``."""

    manager: _Manager
    catalogue: Catalogue


class LogWindow(QWidget):
    """The logs, live. Construct with the core, the app paths and LOG_VIEW_MAX_LINES."""

    def __init__(
        self,
        core: _Core,
        paths: AppPaths,
        max_lines: int = 20_000,
        parent: QWidget | None = None,
        *,
        run_log: tuple[Path, str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FamilyLog Tray — Logs")
        self.resize(1000, 640)
        self.core = core
        self.paths = paths
        self.max_lines = max_lines
        self.panes: dict[str | int, LogPane] = {}
        self.tabs = QTabWidget(self, documentMode=True, tabsClosable=True, movable=True)
        self.tabs.tabCloseRequested.connect(self._close_tab_at)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self._closed = False

        app_log = installed_log_file() or paths.app_log_file
        pane = self._add_pane(APP_TAB, "App", closable=False)
        pane.follow_file(app_log)
        run = self._add_pane(
            RUN_TAB,
            RUN_TITLE,
            closable=False,
            placeholder="No FamilyLog run yet. Start one with “Process now” in the tray.",
        )
        run.folder = paths.runs_dir
        if run_log is None:
            newest = _newest_file(paths.runs_dir)
            run_log = (newest, RUN_TITLE) if newest else None
        if run_log is not None:
            self.show_run_log(*run_log)
        statuses = core.manager.statuses()
        ports = {p for p, st in statuses.items() if st.spec is not None or st.log_path}
        ports |= _ports_with_logs(paths.log_dir)  # earlier runs: read why a server died
        for port in sorted(ports):
            self.port_pane(port, statuses.get(port))
        self._unsubscribe = core.manager.subscribe(self._on_state)

    # ── Tabs ──────────────────────────────────────────────────────────────────
    def _add_pane(
        self, key: str | int, title: str, *, closable: bool, placeholder: str = ""
    ) -> LogPane:
        folder = self.paths.log_dir
        pane = LogPane(self.max_lines, folder, self.tabs, placeholder=placeholder)
        index = self.tabs.addTab(pane, title)
        if not closable:
            bar = self.tabs.tabBar()
            for side in (bar.ButtonPosition.RightSide, bar.ButtonPosition.LeftSide):
                button = bar.tabButton(index, side)
                if button is not None:
                    button.hide()
                    bar.setTabButton(index, side, None)
        self.panes[key] = pane
        return pane

    def port_title(self, port: int, status: ServerStatus | None = None) -> str:
        status = status or self.core.manager.statuses().get(port)
        catalogue = self.core.catalogue
        spec = status.spec if status else None
        entry = catalogue.by_file(spec.model_path, spec.mmproj) if spec else None
        if entry is None and status is None:
            roles = catalogue.roles().values()
            entry = next((e for e in roles if e.port == port and e.configured), None)
        if entry is not None:
            return f"{entry.title} · {port}"
        name = status.model_name if status else ""
        return f"{name or 'llama-server'} · {port}"

    def port_pane(self, port: int, status: ServerStatus | None = None) -> LogPane:
        """The tab of ``port``, created (and following its log) if there is none yet."""
        pane = self.panes.get(port)
        title = self.port_title(port, status)
        if pane is None:
            pane = self._add_pane(port, title, closable=True)
            pane.follow_file(self.core.manager.log_path(port))
        else:
            self.tabs.setTabText(self.tabs.indexOf(pane), title)
        return pane

    def file_pane(self, path: Path, title: str) -> LogPane:
        """A closable tab following any log file (FamilyLog's own llama-server logs)."""
        key = f"file:{path}"
        pane = self.panes.get(key)
        if pane is None:
            pane = self._add_pane(key, title, closable=True)
            pane.follow_file(Path(path))
        return pane

    def tab_titles(self) -> list[str]:
        return [self.tabs.tabText(i) for i in range(self.tabs.count())]

    def select(self, key: str | int) -> None:
        pane = self.panes.get(key)
        if pane is not None:
            self.tabs.setCurrentWidget(pane)

    def set_max_lines(self, max_lines: int) -> None:
        """Every tab keeps at most ``max_lines`` lines from now on."""
        self.max_lines = max_lines
        for pane in self.panes.values():
            pane.view.set_max_lines(max_lines)

    def _close_tab_at(self, index: int) -> None:
        pane = self.tabs.widget(index)
        key = next((k for k, p in self.panes.items() if p is pane), None)
        if key is None or key in (APP_TAB, RUN_TAB):
            return  # the app and run tabs stay
        pane.stop()
        del self.panes[key]
        self.tabs.removeTab(index)
        pane.deleteLater()

    def _on_state(self, event: StateEvent) -> None:
        if self._closed:
            return
        if event.new is ServerState.STARTING or event.port in self.panes:
            self.port_pane(event.port, event.status)

    # ── FamilyLog runs ────────────────────────────────────────────────────────
    def show_run_log(self, path: Path, title: str = RUN_TITLE) -> None:
        """Follow a run's output file in the run tab (the previous run's lines are cleared)."""
        pane = self.panes[RUN_TAB]
        pane.view.clear_view()
        pane.follow_file(Path(path))
        self.tabs.setTabText(self.tabs.indexOf(pane), title or RUN_TITLE)

    def append_run_lines(self, lines: list[str]) -> None:
        """Show lines of a run's output directly (when they are not in a followed file)."""
        self.panes[RUN_TAB].view.add_lines(lines)

    # ── Life cycle ────────────────────────────────────────────────────────────
    def shutdown(self) -> None:
        """Stop every follower and the state subscription; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        for pane in self.panes.values():
            pane.stop()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


class LogWindowController:
    """Owns the single log window: ``open()`` shows or raises it, creating it when needed."""

    def __init__(self, core: _Core, paths: AppPaths, max_lines: int = 20_000) -> None:
        self.core = core
        self.paths = paths
        self.max_lines = max_lines
        self.window: LogWindow | None = None
        self._run_log: tuple[Path, str] | None = None
        self._files: dict[Path, str] = {}

    @classmethod
    def for_settings(cls, core: _Core, paths: AppPaths, settings) -> LogWindowController:
        return cls(core, paths, settings.LOG_VIEW_MAX_LINES)

    def open(self, tab: str | int | None = None) -> LogWindow:
        """Show the window (new if it was closed), raise it, and optionally pick a tab."""
        if self.window is None or self.window._closed:
            self.window = LogWindow(self.core, self.paths, self.max_lines, run_log=self._run_log)
            self.window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
            for path, title in self._files.items():
                self.window.file_pane(path, title)
        w = self.window
        if tab is not None:
            w.select(tab)
        w.show()
        w.setWindowState(w.windowState() & ~Qt.WindowState.WindowMinimized)
        w.raise_()
        w.activateWindow()
        return w

    def set_max_lines(self, max_lines: int) -> None:
        """LOG_VIEW_MAX_LINES changed: the open window's tabs and every later one keep this many."""
        self.max_lines = max_lines
        if self.window is not None and not self.window._closed:
            self.window.set_max_lines(max_lines)

    def show_run_log(self, path: Path, title: str = RUN_TITLE) -> None:
        """A run started writing to ``path``: show it now if the window is open, or later."""
        self._run_log = (Path(path), title)
        if self.window is not None and not self.window._closed:
            self.window.show_run_log(path, title)

    def show_file(self, path: Path, title: str) -> None:
        """Follow another log file in its own tab, now if the window is open, or later."""
        path = Path(path)
        if path in self._files:
            return
        self._files[path] = title
        if self.window is not None and not self.window._closed:
            self.window.file_pane(path, title)

    def append_run_lines(self, lines: list[str]) -> None:
        if self.window is not None and not self.window._closed:
            self.window.append_run_lines(lines)

    def close(self) -> None:
        """At quit: close the window and stop its followers."""
        if self.window is not None:
            self.window.shutdown()
            self.window.close()
            self.window.deleteLater()
            self.window = None


def _ports_with_logs(folder: Path) -> set[int]:
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return set()
    return {int(m.group(1)) for n in names if (m := _SERVER_LOG.fullmatch(n))}


def _newest_file(folder: Path) -> Path | None:
    try:
        files = [p for p in folder.iterdir() if p.is_file() and p.suffix == ".log"]
    except OSError:
        return None
    return max(files, key=lambda p: p.stat().st_mtime, default=None)
