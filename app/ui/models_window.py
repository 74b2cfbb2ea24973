"""The models and VRAM window: running servers live from the core's state events,
Load / Unload / Switch buttons per profile, and the GPU panel."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.gpu.models import GpuSnapshot
from app.core.notices import Level, Notice
from app.core.servers.states import ServerState, ServerStatus, StateEvent
from app.core.summary import model_view, server_label
from app.ui.gpu_panel import GpuPanel, ServerShare
from app.ui.tray_menu import MenuHost, external_text

log = logging.getLogger(__name__)

COLUMNS = ("Profile", "Model file", "mmproj", "Port", "PID", "State", "Uptime", "Context", "Memory")


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ModelsWindow(QWidget):
    def __init__(self, host: MenuHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.setWindowTitle("FamilyLog Tray: models and VRAM")
        self.statuses: dict[int, ServerStatus] = dict(host.core.manager.statuses())
        self.snapshot: GpuSnapshot | None = None
        layout = QVBoxLayout(self)

        box = QGroupBox("Models")
        self._grid = QGridLayout(box)
        self.profile_rows: dict[str, tuple[QLabel, QPushButton, QPushButton]] = {}
        layout.addWidget(box)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)

        self.gpu_panel = GpuPanel()
        layout.addWidget(self.gpu_panel)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setStyleSheet("color: #b00020;")
        self.problem.hide()
        layout.addWidget(self.problem)

        self._log_next_snapshot = True
        self._uptime_timer = QTimer(self)
        self._uptime_timer.setInterval(1000)
        self._uptime_timer.timeout.connect(self._refresh_uptimes)
        self.resize(1000, 520)
        self.refresh_profiles()
        self.refresh_table()

    # ── Inputs ────────────────────────────────────────────────────────────────
    def on_state(self, event: StateEvent) -> None:
        """A state event from the core's manager: update that port's row."""
        self.statuses[event.port] = event.status
        self.refresh_table()
        self.refresh_profiles()

    def on_snapshot(self, snapshot: GpuSnapshot) -> None:
        self.snapshot = snapshot
        self.refresh_table()
        shares = [
            ServerShare(f"{server_label(self.host.core, st)} :{port}", st.pid)
            for port, st in self.statuses.items()
            if st.pid
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
        self.refresh_table()  # a "port taken" notice comes with a new external server

    # ── Rendering ─────────────────────────────────────────────────────────────
    def rows(self) -> list[ServerStatus]:
        return [st for st in self.statuses.values() if st.state is not ServerState.STOPPED]

    def refresh_table(self) -> None:
        rows = self.rows()
        shown = {st.port for st in rows}
        external = [e for p, e in sorted(self.host.core.external.items()) if p not in shown]
        self.table.setRowCount(len(rows) + len(external))
        for r, st in enumerate(rows):
            spec = st.spec
            values = (
                server_label(self.host.core, st),
                Path(spec.model_path).name if spec else "",
                Path(spec.mmproj).name if spec and spec.mmproj else "",
                str(st.port),
                str(st.pid or ""),
                st.state.value,
                format_uptime(st.uptime),
                str(spec.ctx_size) if spec else "",
                self._memory_text(st),
            )
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                if c == 1 and spec:
                    item.setToolTip(spec.model_path)
                if c == 5 and st.error:
                    item.setToolTip(st.error)
                self.table.setItem(r, c, item)
        for r, ext in enumerate(external, start=len(rows)):
            values = ["", "", "", str(ext.port), str(ext.pid or ""), "external"]
            values[0] = "llama-server" if ext.is_llama_server else (ext.name or "")
            for c in range(len(COLUMNS)):
                item = QTableWidgetItem(values[c] if c < len(values) else "")
                item.setToolTip(
                    f"{external_text(ext)}: started outside this app, left running."
                    + (f"\n{ext.cmdline}" if ext.cmdline else "")
                )
                self.table.setItem(r, c, item)

    def _memory_text(self, st: ServerStatus) -> str:
        if not st.pid:
            return ""
        parts = []
        monitor = getattr(self.host, "gpu_monitor", None)
        mem = monitor.server_memory.get(st.pid) if monitor else None
        if mem is not None and mem.found:
            parts.append(mem.text())
        if self.snapshot is not None:
            gpu = self.snapshot.gpu_mib_of(st.pid)
            if gpu is not None:
                parts.append(f"GPU {gpu:.0f} MiB")
            rss = self.snapshot.rss_mib.get(st.pid)
            if rss is not None:
                parts.append(f"RSS {rss:.0f} MiB")
        return "; ".join(parts)

    def _refresh_uptimes(self) -> None:
        for r, st in enumerate(self.rows()):
            item = self.table.item(r, 6)
            if item is not None:
                item.setText(format_uptime(st.uptime))

    def refresh_profiles(self) -> None:
        core, host = self.host.core, self.host
        for i, (name, entry) in enumerate(core.catalogue.roles().items()):
            row = self.profile_rows.get(name)
            if row is None:
                label = QLabel()
                label.setWordWrap(True)
                load, unload = QPushButton("Load"), QPushButton("Unload")
                load.clicked.connect(lambda _=False, n=name: self._act(n, host.load))
                unload.clicked.connect(lambda _=False, n=name: self._act(n, host.unload))
                for col, w in enumerate((label, load, unload)):
                    self._grid.addWidget(w, i, col)
                self._grid.setColumnStretch(0, 1)
                row = self.profile_rows[name] = (label, load, unload)
            label, load, unload = row
            view = model_view(core, entry)
            label.setText(view.text)
            load.setEnabled(view.can_load)
            unload.setEnabled(view.can_unload)

    def _act(self, role: str, action) -> None:
        action(self.host.core.catalogue.role(role).key)

    # ── Visibility drives the GPU probe rate ─────────────────────────────────
    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        self._uptime_timer.start()
        self.refresh_profiles()
        self.refresh_table()
        monitor = getattr(self.host, "gpu_monitor", None)
        if monitor is not None:
            monitor.set_fast(True)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().hideEvent(event)
        self._uptime_timer.stop()
        self._log_next_snapshot = True
        monitor = getattr(self.host, "gpu_monitor", None)
        if monitor is not None:
            monitor.set_fast(False)
