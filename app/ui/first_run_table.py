"""The first-run dialog's table of discovered models."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from app.core.discovery import DiscoveredModel, human_size

COLUMNS = (
    "Model",
    "Architecture",
    "Parameters",
    "Quantization",
    "Context",
    "Size",
    "Vision",
    "Source",
)


def _item(text: str, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if tooltip:
        item.setToolTip(tooltip)
    return item


class ModelTable(QTableWidget):
    """One row per model: what its header says, its mmproj and where it was found."""

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.models: list[DiscoveredModel] = []
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # Every column as wide as its content (a Stretch column got what was left: the
        # model names were squeezed); the last one fills the rest, the table scrolls
        # sideways when the names are long, and a column can still be dragged.
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.verticalHeader().setVisible(False)

    def fill(self, models: list[DiscoveredModel]) -> None:
        self.models = list(models)
        self.setRowCount(len(self.models))
        for row, m in enumerate(self.models):
            i = m.info
            ctx = f"{i.context_length:,}" if i.context_length else "?"
            shards = f" ({i.shards} files)" if i.shards > 1 else ""
            mmproj = m.mmproj.path if m.mmproj else None
            cells = (
                _item(m.key if m.key != i.path.stem else i.name, str(i.path)),
                _item(i.architecture),
                _item(i.size_label, f"{i.parameters:,} parameters"),
                _item(i.quantization),
                _item(ctx),
                _item(human_size(i.size_bytes) + shards),
                _item(mmproj.name if mmproj else "", str(mmproj) if mmproj else ""),
                _item(m.source),
            )
            for col, cell in enumerate(cells):
                self.setItem(row, col, cell)
        self.resizeColumnsToContents()

    def selected_model(self) -> DiscoveredModel | None:
        rows = self.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows else None

    def select_path(self, path: Path) -> None:
        for row, m in enumerate(self.models):
            if m.path == path:
                self.selectRow(row)
                return
        raise KeyError(f"{path} is not in the table")
