"""FamilyLog runs in the tray: "Process now", "Processing… (mm:ss)", "Cancel run",
"Recent runs", the next scheduled run, the run icon and the run's output in the log window.

It renders ``core.runs`` (the Qt-free RunService) and calls it; it decides nothing itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Protocol

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from app.core.notices import Level, Notice, NoticeBus
from app.core.runs.records import RunRecord, RunStatus, format_duration
from app.core.runs.service import RunService
from app.ui.log_window import LogWindowController

log = logging.getLogger(__name__)


class RunsHost(Protocol):
    """What the runs section needs of the app (``TrayApp``)."""

    logs: LogWindowController

    def set_run_in_progress(self, running: bool) -> None: ...
    def refresh_tooltip(self) -> None: ...
    def after_run_change(self) -> None: ...


_OUTCOME_MARK = {
    "succeeded": "✓",
    "failed": "✗",
    "cancelled": "■",
    "timed out": "⏱",
    "not started": "✗",
    "running": "▶",
    "interrupted": "⚠",
}


class RunsUi(QObject):
    def __init__(
        self, app: RunsHost, runs: RunService, notices: NoticeBus, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.app = app
        self.runs = runs
        self.notices = notices
        self.act_process_now: QAction | None = None
        self.act_cancel: QAction | None = None
        self.recent_menu: QMenu | None = None
        self.recent_actions: list[QAction] = []
        self._last_log = None
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        self._unsub = self.runs.subscribe_state(self._on_state)

    def close(self) -> None:
        self._timer.stop()
        self._unsub()

    # ── Actions ───────────────────────────────────────────────────────────────
    def process_now(self, trigger: str = "tray") -> str:
        result = self.runs.process_now(trigger)
        if not result.started:
            self.notices.emit(Notice(Level.INFO, "FamilyLog", result.message))
        return result.message

    def cancel(self) -> None:
        if self.runs.cancel():
            log.info("Run cancelled from the tray")

    def open_run_log(self, record: RunRecord) -> None:
        when = dt.datetime.fromtimestamp(record.started_at).strftime("%d %b %H:%M")
        self.app.logs.show_run_log(record.log_path, f"FamilyLog run {when}")
        self.app.logs.open("run")

    # ── Run state → icon, tooltip, log window ─────────────────────────────────
    def _on_state(self, st: RunStatus) -> None:
        self.app.set_run_in_progress(st.busy)
        if st.busy:
            self._timer.start()
        else:
            self._timer.stop()
        if st.log_file is not None and st.log_file != self._last_log:
            self._last_log = st.log_file
            stamp = dt.datetime.now().strftime("%H:%M")
            self.app.logs.show_run_log(st.log_file, f"FamilyLog run {stamp}")
        self.app.after_run_change()

    def _tick(self) -> None:
        self.app.refresh_tooltip()
        for path in self.runs.familylog_server_logs():
            self.app.logs.show_file(path, f"FamilyLog · {path.stem}")
        if self.act_process_now is not None:
            st = self.runs.status()
            if st.busy:
                self.act_process_now.setText(f"Processing… ({st.elapsed_text})")

    # ── The menu section ──────────────────────────────────────────────────────
    def fill_menu(self, menu: QMenu) -> None:
        st = self.runs.status()
        if st.busy:
            self.act_process_now = menu.addAction(f"Processing… ({st.elapsed_text})")
            self.act_process_now.setEnabled(False)
            self.act_cancel = menu.addAction("Cancel run")
            self.act_cancel.triggered.connect(self.cancel)
        else:
            self.act_process_now = menu.addAction("Process now")
            self.act_process_now.triggered.connect(lambda: self.process_now("tray"))
            self.act_cancel = None
        nxt = self.runs.next_run()
        if nxt is not None:
            menu.addAction(f"Next run: {nxt.strftime('%a %H:%M')}").setEnabled(False)
        self.recent_menu = menu.addMenu("Recent runs")
        self.recent_actions = []
        records = self.runs.recent_runs(10)
        for record in records:
            when = dt.datetime.fromtimestamp(record.started_at).strftime("%d %b %H:%M")
            mark = _OUTCOME_MARK.get(str(record.outcome), "•")
            text = f"{mark} {when}: {record.outcome} ({format_duration(record.duration_s)})"
            act = self.recent_menu.addAction(text)
            act.triggered.connect(lambda _=False, r=record: self.open_run_log(r))
            self.recent_actions.append(act)
        self.recent_menu.setEnabled(bool(records))
