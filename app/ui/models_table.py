"""The models window's table: its Qt model over ``ModelRow`` cells, the speed sparkline
delegate, and the per-row widgets (Load / Unload / Cancel, the loading cell)."""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QAbstractTableModel, QPointF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.core.model_rows import ModelRow


class RowHost(Protocol):
    """What a row's buttons call (the app)."""

    def load(self, key: str) -> object: ...
    def unload(self, key: str) -> object: ...
    def cancel(self, key: str) -> object: ...


COLUMNS = (
    "Name",
    "Key",
    "Role",
    "Type",
    "Size",
    "Quant",
    "Context",
    "State",
    "Memory",
    "Speed",
    "Details",
    "",
)
FIELDS = (
    "name",
    "key",
    "role",
    "type",
    "size",
    "quant",
    "context",
    "state",
    "memory",
    "speed",
    "details",
)
NAME_COL, KEY_COL = COLUMNS.index("Name"), COLUMNS.index("Key")
STATE_COL, MEMORY_COL, SPEED_COL = (COLUMNS.index(c) for c in ("State", "Memory", "Speed"))
ACTIONS_COL = len(COLUMNS) - 1
HISTORY_ROLE = Qt.ItemDataRole.UserRole + 1  # the speed cell's sparkline values
SPARK_WIDTH = 60


class ModelsTable(QAbstractTableModel):
    """The rows in display order; ``set_row`` changes one, ``reorder`` moves them."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[ModelRow] = []
        self._index: dict[str, int] = {}

    def rowCount(self, parent=None) -> int:  # noqa: N802 (Qt API)
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent=None) -> int:  # noqa: N802 (Qt API)
        return 0 if parent is not None and parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.column() >= len(FIELDS):
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return getattr(row, FIELDS[index.column()])
        if role == Qt.ItemDataRole.ToolTipRole:
            if index.column() == MEMORY_COL:
                return row.memory or None
            if index.column() == SPEED_COL:
                return row.speed_tip or None
            if index.column() in (NAME_COL, KEY_COL):  # shortened in the middle when narrow
                return "\n".join(t for t in (getattr(row, FIELDS[index.column()]), row.tip) if t)
            return row.tip or None
        if role == HISTORY_ROLE and index.column() == SPEED_COL:
            return row.speed_history
        return None

    def row_of(self, key: str) -> int | None:
        return self._index.get(key)

    def reset(self, rows: list[ModelRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self._index = {r.key: i for i, r in enumerate(rows)}
        self.endResetModel()

    def set_row(self, row: ModelRow) -> bool:
        """Replace the row of ``row.key``; True if anything shown changed."""
        i = self._index.get(row.key)
        if i is None or self.rows[i] == row:
            return False
        self.rows[i] = row
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
        return True

    def reorder(self, keys: list[str]) -> None:
        """Put the rows in the order of ``keys`` (the same set), moving persistent indexes."""
        if keys == [r.key for r in self.rows]:
            return
        self.layoutAboutToBeChanged.emit()
        old = self._index
        by_key = {r.key: r for r in self.rows}
        self.rows = [by_key[k] for k in keys]
        self._index = {k: i for i, k in enumerate(keys)}
        moved_from, moved_to = [], []
        for k, new_row in self._index.items():
            for c in range(len(COLUMNS)):
                moved_from.append(self.index(old[k], c))
                moved_to.append(self.index(new_row, c))
        self.changePersistentIndexList(moved_from, moved_to)
        self.layoutChanged.emit()


def paint_sparkline(painter: QPainter, rect, values, color: QColor) -> None:
    """A line of ``values`` (oldest left) scaled into ``rect``, from 0 to the highest."""
    if len(values) < 2:
        if values:
            y = rect.center().y()
            painter.setPen(QPen(color, 1.5))
            painter.drawLine(rect.left(), y, rect.right(), y)
        return
    top = max(values) or 1.0
    step = (rect.width() - 1) / (len(values) - 1)
    h = rect.height() - 1
    points = QPolygonF(
        [
            QPointF(rect.left() + i * step, rect.top() + h - v / top * h)
            for i, v in enumerate(values)
        ]
    )
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(color, 1.5))
    painter.drawPolyline(points)
    painter.restore()


class SpeedDelegate(QStyledItemDelegate):
    """The speed cell: "54.8 t/s" and, right of it, a sparkline of the last replies."""

    def paint(self, painter: QPainter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        values = index.data(HISTORY_ROLE) or ()
        spark = opt.rect.adjusted(opt.rect.width() - SPARK_WIDTH - 4, 4, -4, -4)
        if values:
            opt.rect = opt.rect.adjusted(0, 0, -SPARK_WIDTH - 6, 0)
        widget = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            bg = QStyleOptionViewItem(opt)  # the whole cell's background, then the text
            bg.rect = option.rect
            bg.text = ""
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, bg, painter, widget)
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        if values:
            paint_sparkline(painter, spark, list(values), QColor("#2e7d32"))

    def sizeHint(self, option, index) -> QSize:  # noqa: N802 (Qt API)
        size = super().sizeHint(option, index)
        return QSize(size.width() + SPARK_WIDTH + 10, size.height())


class RowActions(QWidget):
    """Load (Cancel instead while the model loads) and Unload, for the row of ``key``."""

    def __init__(self, host: RowHost, key: str) -> None:
        super().__init__()
        self.key = key
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 0, 2, 0)
        lay.setSpacing(4)
        self.load = QPushButton("Load")
        self.unload = QPushButton("Unload")
        self.cancel = QPushButton("Cancel")
        for b in (self.load, self.unload, self.cancel):
            b.setAutoDefault(False)
            b.setFixedWidth(b.fontMetrics().horizontalAdvance(b.text()) + 20)
            lay.addWidget(b)
        lay.addStretch(1)
        self.load.clicked.connect(lambda: host.load(self.key))
        self.unload.clicked.connect(lambda: host.unload(self.key))
        self.cancel.clicked.connect(lambda: host.cancel(self.key))

    def show_row(self, row: ModelRow) -> None:
        self.key = row.key
        self.load.setEnabled(row.can_load)
        self.unload.setEnabled(row.can_unload)
        self.load.setVisible(not row.loading)  # Cancel takes its place while it loads
        self.cancel.setVisible(row.loading)

    def widest(self) -> int:
        """The width the buttons need at most (Cancel, shown instead of Load, is wider)."""
        self.load.hide()
        self.cancel.show()
        return self.sizeHint().width()


class LoadingCell(QWidget):
    """The state cell while a model loads: the elapsed time and a busy bar."""

    def __init__(self) -> None:
        super().__init__()
        self.setAutoFillBackground(True)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # indeterminate
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(48)
        self.bar.setMaximumHeight(12)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
