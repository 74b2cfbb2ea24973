"""The models window: every catalogue model in one list (loaded ones first) with a filter,
Load / Unload / Cancel per row, the memory each holds, its speed (t/s and a sparkline of
its last replies), its port and PID in the details column (the only place they appear), the
GPU panel, the other machines (``machines_panel``), "Rescan folders", "Get models…" and
"Reset speeds".

Its default size comes from the columns' text and the screen (``fit_to``): where the
screen is too narrow (1280 pixels), the key, the name and the memory give up width and are
shortened in the middle, whole in their tooltips, so Details and the row buttons stay in
sight without a horizontal scroll bar.

The cells are worked out by ``app.core.model_rows.model_row``; this module only renders
them. Updates are per row: a state event re-renders its model's row, a GPU snapshot the
loaded rows; only a catalogue change rebuilds the list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from PySide6.QtCore import QRect, QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core.app_core import AppCore
from app.core.gpu.snapshot import GpuSnapshot
from app.core.lifecycle.instance import InstanceEvent
from app.core.model_rows import ModelRow, model_row, row_order
from app.core.models.entry import ModelEntry
from app.core.notices import Level, Notice
from app.core.summary import MemoryByPid, external_text
from app.ui.gpu_panel import GpuPanel, ServerShare
from app.ui.machines_panel import MachinesPanel
from app.ui.models_columns import ColumnWidths
from app.ui.models_table import (
    ACTIONS_COL,
    COLUMNS,
    MEMORY_COL,
    SPEED_COL,
    STATE_COL,
    LoadingCell,
    ModelsTable,
    RowActions,
    SpeedDelegate,
)

log = logging.getLogger(__name__)

MIN_WIDTH, PREFERRED_HEIGHT = 900, 560
FRAME = QSize(24, 72)  # a window manager's frame and title bar, at most


class GpuWatch(Protocol):
    """The GPU monitor: each server's memory from its log, and a faster probe while shown."""

    server_memory: MemoryByPid

    def set_fast(self, fast: bool) -> None: ...


class ModelsHost(Protocol):
    """What the models window needs of the app (``TrayApp``)."""

    core: AppCore
    gpu_snapshot: GpuSnapshot | None
    gpu_monitor: GpuWatch

    def load(self, key: str) -> object: ...
    def unload(self, key: str) -> object: ...
    def cancel(self, key: str) -> object: ...
    def model_settings(self, key: str) -> object: ...
    def rescan(self) -> asyncio.Task | None: ...
    def show_get_models(self) -> None: ...
    def share_gpu(self, on: bool) -> object: ...


class ModelsWindow(QWidget):
    def __init__(self, host: ModelsHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.setWindowTitle("FamilyLog Tray: models and memory")
        self.snapshot: GpuSnapshot | None = host.gpu_snapshot
        layout = QVBoxLayout(self)

        top = QHBoxLayout()
        self.filter_box = QLineEdit()
        self.filter_box.setPlaceholderText("Filter by name or key")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self.apply_filter)
        top.addWidget(self.filter_box, 1)
        self.rescan_label = QLabel()
        top.addWidget(self.rescan_label)
        self.rescan_button = QPushButton("Rescan folders")
        self.rescan_button.setAutoDefault(False)
        self.rescan_button.clicked.connect(self.rescan)
        top.addWidget(self.rescan_button)
        self.get_models_button = QPushButton("Get models…")
        self.get_models_button.setAutoDefault(False)
        self.get_models_button.setToolTip("Search the Hugging Face Hub and download GGUF models")
        self.get_models_button.setEnabled(host.core.downloads is not None)
        self.get_models_button.clicked.connect(host.show_get_models)
        top.addWidget(self.get_models_button)
        self.reset_speeds_button = QPushButton("Reset speeds")
        self.reset_speeds_button.setAutoDefault(False)
        self.reset_speeds_button.setToolTip("Forget every model's speed figures")
        self.reset_speeds_button.clicked.connect(self.reset_speeds)
        top.addWidget(self.reset_speeds_button)
        layout.addLayout(top)

        self.model = ModelsTable(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.speed_delegate = SpeedDelegate(self.table)
        self.table.setItemDelegateForColumn(SPEED_COL, self.speed_delegate)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        probe = RowActions(host, "")
        actions_width = probe.widest()
        row_height = max(probe.sizeHint().height(), self.table.fontMetrics().height()) + 4
        probe.deleteLater()
        vh = self.table.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(row_height)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        layout.addWidget(self.table, 1)

        self.scan_problems = QLabel()
        self.scan_problems.setWordWrap(True)
        self.scan_problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scan_problems.hide()
        layout.addWidget(self.scan_problems)
        self.external_label = QLabel()
        self.external_label.setWordWrap(True)
        self.external_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.external_label.hide()
        layout.addWidget(self.external_label)
        self.gpu_panel = GpuPanel()
        layout.addWidget(self.gpu_panel)
        self.machines = MachinesPanel(host)  # RPC workers, peers, this GPU shared
        layout.addWidget(self.machines)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setStyleSheet("color: #b00020;")
        self.problem.hide()
        layout.addWidget(self.problem)

        self.row_actions: dict[str, RowActions] = {}  # by key
        self.loading_cells: dict[str, LoadingCell] = {}
        self._log_next_snapshot = True
        self._rescan_task: asyncio.Task | None = None
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(1000)
        self._tick_timer.timeout.connect(self._tick)
        self.columns = ColumnWidths(self.table, actions_width)
        self.rebuild()
        screen = self.screen()
        if screen is not None:
            self.fit_to(screen.availableGeometry())

    # ── Inputs ────────────────────────────────────────────────────────────────
    def on_instance(self, event: InstanceEvent) -> None:
        """A model process changed state: re-render its row (and move it if it was loaded
        or unloaded)."""
        self._reorder_if_needed()
        self.update_rows([event.key])
        self.refresh_external()

    def on_speed(self, key: str) -> None:
        """A model answered a request (or its figures were reset): its speed cell."""
        self.update_rows([key])

    def reset_speeds(self) -> None:
        self.host.core.stats.reset()
        self.update_rows()

    def on_catalogue(self) -> None:
        """The catalogue changed (settings applied, folders rescanned): rebuild the list."""
        self.rebuild()

    def on_snapshot(self, snapshot: GpuSnapshot) -> None:
        self.snapshot = snapshot
        self.update_rows([r.key for r in self.model.rows if r.loaded])
        shares = [
            ServerShare(f"{inst.title or inst.key} :{inst.port}", inst.pid)
            for inst in self.host.core.lifecycle.snapshot()
            if inst.pid
        ]
        self.gpu_panel.update_snapshot(snapshot, shares)
        if self._log_next_snapshot and self.isVisible():
            self._log_next_snapshot = False
            log.info("Models window shows GPU memory from %s", snapshot.source)

    def on_notice(self, notice: Notice) -> None:
        if notice.level is Level.INFO:
            return
        text = f"{notice.title}: {notice.text}"
        if notice.log_path:
            text += f"\nLog: {notice.log_path}"
        self.problem.setText(text)
        self.problem.show()
        self.refresh_external()  # a "port taken" notice comes with a new external server

    # ── Rendering ─────────────────────────────────────────────────────────────
    def _row(self, entry: ModelEntry, now: float) -> ModelRow:
        memory = self.host.gpu_monitor.server_memory
        return model_row(self.host.core, entry, self.snapshot, memory, now)

    def rebuild(self) -> None:
        """Every row from scratch (at start and when the catalogue changes)."""
        now = time.time()
        rows = [self._row(e, now) for e in row_order(self.host.core)]
        self.model.reset(rows)
        for w in (*self.row_actions.values(), *self.loading_cells.values()):
            w.deleteLater()
        self.row_actions, self.loading_cells = {}, {}
        for r, row in enumerate(rows):
            w = RowActions(self.host, row.key)
            w.show_row(row)
            self.table.setIndexWidget(self.model.index(r, ACTIONS_COL), w)
            self.row_actions[row.key] = w
            self._show_loading(row)
        self.columns.fit()
        self.apply_filter()
        self.refresh_external()

    # ── Size ──────────────────────────────────────────────────────────────────
    def fit_to(self, free: QRect) -> None:
        """The default size: as wide as the columns' text wants, at most ``free`` (the
        screen's area outside panels and docks) less the window's frame."""
        m = self.layout().contentsMargins()
        scroll_bar = self.table.verticalScrollBar().sizeHint().width()
        chrome = m.left() + m.right() + 2 * self.table.frameWidth() + scroll_bar
        wanted = QSize(max(MIN_WIDTH, self.columns.wanted() + chrome), PREFERRED_HEIGHT)
        room = free.size() - FRAME
        self.resize(wanted.boundedTo(room))
        self.layout().activate()  # the table gets its new width now; the columns follow
        self.columns.spread()

    def update_rows(self, keys: list[str] | None = None) -> None:
        """Re-render the rows of ``keys`` (all when None); only changed rows repaint."""
        core, now = self.host.core, time.time()
        wanted = None if keys is None else set(keys)
        changed = False
        for row in list(self.model.rows):
            if wanted is not None and row.key not in wanted:
                continue
            entry = core.catalogue.find(row.key)
            if entry is None or entry.key != row.key:
                continue
            new = self._row(entry, now)
            if self.model.set_row(new):
                changed = True
                self.row_actions[new.key].show_row(new)
                self._show_loading(new)
        if changed:
            self.columns.fit((STATE_COL, MEMORY_COL, SPEED_COL, COLUMNS.index("Details")))

    def refresh(self) -> None:
        """After an action of the app: order and every row again (changed ones repaint)."""
        self._reorder_if_needed()
        self.update_rows()
        self.refresh_external()

    def _reorder_if_needed(self) -> None:
        keys = [e.key for e in row_order(self.host.core)]
        if sorted(keys) != sorted(r.key for r in self.model.rows):
            self.rebuild()  # the catalogue changed under us
            return
        if keys != [r.key for r in self.model.rows]:
            self.model.reorder(keys)
            self._place_widgets()
            self.apply_filter()

    def _place_widgets(self) -> None:
        """Each row's widgets in its cells after the rows moved (the view moves them with
        the persistent indexes; made again if a cell holds another row's)."""
        for r, row in enumerate(self.model.rows):
            if self.table.indexWidget(self.model.index(r, ACTIONS_COL)) is not self.row_actions[
                row.key
            ] or self.table.indexWidget(self.model.index(r, STATE_COL)) is not (
                self.loading_cells.get(row.key)
            ):
                break
        else:
            return
        log.debug("Models window: making the row widgets again after a move")
        for r, row in enumerate(self.model.rows):
            w = self.row_actions[row.key] = RowActions(self.host, row.key)
            w.show_row(row)
            self.table.setIndexWidget(self.model.index(r, ACTIONS_COL), w)
            self.table.setIndexWidget(self.model.index(r, STATE_COL), None)
        self.loading_cells = {}
        for row in self.model.rows:
            self._show_loading(row)

    def _show_loading(self, row: ModelRow) -> None:
        """A busy bar in the state cell while the model loads."""
        r = self.model.row_of(row.key)
        if r is None:
            return
        idx = self.model.index(r, STATE_COL)
        cell = self.loading_cells.get(row.key)
        if row.loading:
            if cell is None:
                cell = self.loading_cells[row.key] = LoadingCell()
                self.table.setIndexWidget(idx, cell)
            cell.label.setText(row.state)
        elif cell is not None:
            del self.loading_cells[row.key]
            self.table.setIndexWidget(idx, None)

    def apply_filter(self, _text: str | None = None) -> None:
        needle = self.filter_box.text().strip().casefold()
        for r, row in enumerate(self.model.rows):
            hit = not needle or needle in row.name.casefold() or needle in row.key.casefold()
            self.table.setRowHidden(r, not hit)

    def refresh_external(self) -> None:
        """Ports held by programs the app did not start: their port and PID, here only."""
        external = sorted(self.host.core.external.items())
        if not external:
            self.external_label.hide()
            return
        lines = [external_text(ext) for _, ext in external]
        self.external_label.setText(
            "Started outside this app and left running (the models that use these ports "
            "cannot load there):\n" + "\n".join(lines)
        )
        self.external_label.show()

    def _tick(self) -> None:
        """Every second while shown: the loading rows' elapsed time, and the live rows
        (a load's end and a drain come without a state event)."""
        live = [r.key for r in self.model.rows if r.loaded or r.loading]
        if live:
            self.update_rows(live)

    # ── Rescan ────────────────────────────────────────────────────────────────
    def rescan(self) -> None:
        task = self.host.rescan()
        if task is None:
            return
        self._rescan_task = task
        self.rescan_button.setEnabled(False)
        self.rescan_label.setText("Scanning…")
        task.add_done_callback(self._rescanned)

    def _rescanned(self, task: asyncio.Task) -> None:
        self.rescan_button.setEnabled(True)
        if task.cancelled():
            self.rescan_label.setText("")
            return
        if task.exception() is not None:
            self.rescan_label.setText(f"Rescan failed: {task.exception()}")
            return
        problems = task.result() or []
        found = sum(1 for e in self.host.core.catalogue.entries() if not e.role)
        text = f"Found {found} model{'s' if found != 1 else ''} in the folders"
        if problems:
            text += f"; {len(problems)} could not be read"
        self.rescan_label.setText(text)
        self.scan_problems.setText("\n".join(problems))
        self.scan_problems.setVisible(bool(problems))

    # ── Visibility drives the GPU probe rate ─────────────────────────────────
    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        self._tick_timer.start()
        self.refresh()
        self.host.gpu_monitor.set_fast(True)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().hideEvent(event)
        self._tick_timer.stop()
        self._log_next_snapshot = True
        self.host.gpu_monitor.set_fast(False)
