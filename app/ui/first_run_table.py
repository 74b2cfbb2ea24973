"""The first-run dialog's table of discovered models."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from app.core.discovery.scan import FoundModel
from app.core.units import size_text

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


def read_only_item(text: str, tooltip: str = "") -> QTableWidgetItem:
    """A table cell that shows ``text`` (and ``tooltip``) and cannot be edited."""
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if tooltip:
        item.setToolTip(tooltip)
    return item


class ModelTable(QTableWidget):
    """One row per model: what its header says, its mmproj and where it was found."""

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.models: list[FoundModel] = []
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

    def fill(self, models: list[FoundModel]) -> None:
        self.models = list(models)
        self.setRowCount(len(self.models))
        for row, m in enumerate(self.models):
            i = m.info
            ctx = f"{i.context_length:,}" if i.context_length else "?"
            shards = f" ({i.shards} files)" if i.shards > 1 else ""
            name = m.key if m.key != m.path.stem else (i.name or m.path.stem)
            cells = (
                read_only_item(name, str(m.path)),
                read_only_item(i.architecture or "?"),
                read_only_item(i.params_label, f"{i.n_params:,} parameters"),
                read_only_item(m.quant or "?"),
                read_only_item(ctx),
                read_only_item(size_text(i.size_bytes) + shards),
                read_only_item(m.mmproj.name if m.mmproj else "", str(m.mmproj or "")),
                read_only_item(m.source),
            )
            for col, cell in enumerate(cells):
                self.setItem(row, col, cell)
        self.resizeColumnsToContents()

    def selected_model(self) -> FoundModel | None:
        rows = self.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows else None

    def select_path(self, path: Path) -> None:
        for row, m in enumerate(self.models):
            if m.path == path:
                self.selectRow(row)
                return
        raise KeyError(f"{path} is not in the table")
