"""The models window's "Other machines" panel: the switch that shares this GPU (with the
RPC protocol's missing authentication said beside it), the RPC workers with their state
and the reason, and the peers with their models (type, state, speed). Its lines come from
``app.core.machine_rows``; it is refreshed when a worker, a peer or the shared worker
changes."""

from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.app_core import AppCore
from app.core.machine_rows import MachineLine, peer_lines, share_line, worker_lines
from app.settings_machines import NO_AUTH

PROBLEM = QColor("#b00020")


class MachinesHost(Protocol):
    core: AppCore

    def share_gpu(self, on: bool) -> object: ...


class MachinesPanel(QGroupBox):
    def __init__(self, host: MachinesHost, parent: QWidget | None = None) -> None:
        super().__init__("Other machines", parent)
        self.host = host
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.share = QCheckBox("Share this GPU with other machines")
        self.share.setToolTip(f"{NO_AUTH}.")
        self.share.toggled.connect(self._share_toggled)
        top.addWidget(self.share)
        self.share_status = QLabel()
        self.share_status.setWordWrap(True)
        top.addWidget(self.share_status, 1)
        layout.addLayout(top)
        self.warning = QLabel(f"⚠ {NO_AUTH}: share only on a network you trust.")
        self.warning.setWordWrap(True)
        layout.addWidget(self.warning)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Machine or model", "Type", "State", "Speed"])
        self.tree.setRootIsDecorated(True)
        self.tree.setMaximumHeight(160)
        layout.addWidget(self.tree)
        self.refresh()

    def _share_toggled(self, on: bool) -> None:
        if on != self.host.core.settings.RPC_WORKER_ENABLED:
            self.host.share_gpu(on)

    def refresh(self) -> None:
        core = self.host.core
        self.share.blockSignals(True)
        self.share.setChecked(core.settings.RPC_WORKER_ENABLED)
        self.share.setEnabled(core.shared_worker is not None)
        self.share.blockSignals(False)
        share = share_line(core)
        self.share_status.setText(share.text)
        self.share_status.setStyleSheet("" if share.ok else f"color: {PROBLEM.name()};")
        self.warning.setVisible(core.settings.RPC_WORKER_ENABLED)
        self.tree.clear()
        workers = worker_lines(core)
        peers = peer_lines(core)
        self.setVisible(bool(workers or peers) or core.shared_worker is not None)
        if workers:
            top = QTreeWidgetItem(self.tree, ["RPC workers (RPC_WORKERS)"])
            for w in workers:
                self._line(top, w)
            top.setExpanded(True)
        for peer, models in peers:
            item = self._line(self.tree.invisibleRootItem(), peer)
            for m in models:
                QTreeWidgetItem(item, [m.key, m.type, m.state, m.speed])
            item.setExpanded(True)
        if not workers and not peers:
            QTreeWidgetItem(self.tree, ["No RPC workers or peers set (Settings… › Other machines)"])

    def _line(self, parent: QTreeWidgetItem, line: MachineLine) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [line.text])
        item.setFirstColumnSpanned(True)
        if line.tip:
            item.setToolTip(0, line.tip)
        if not line.ok:
            item.setForeground(0, QBrush(PROBLEM))
        return item

    def rows(self) -> list[str]:
        """Every line of the tree, in order (children indented), for tests and copying."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem, depth: int) -> None:
            for i in range(item.childCount()):
                child = item.child(i)
                cells = [child.text(c) for c in range(4) if child.text(c)]
                out.append("  " * depth + " · ".join(cells))
                walk(child, depth + 1)

        walk(self.tree.invisibleRootItem(), 0)
        return out
