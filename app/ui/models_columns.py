"""The models table's column widths: each column as wide as its text (some capped), and,
where the window is too narrow, the key, the name and the memory give up width so the row
buttons stay in sight."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QTableView

from app.ui.models_table import ACTIONS_COL, FIELDS, KEY_COL, MEMORY_COL, NAME_COL, STATE_COL

MOST = {NAME_COL: 240, KEY_COL: 420, MEMORY_COL: 360}  # px: wider text is shortened
STATE_WIDTH = 120  # room for "loading 1:05" and its busy bar
# Too little room: these columns give up width, down to these widths.
SHRINK = {KEY_COL: 150, NAME_COL: 110, MEMORY_COL: 140}


class ColumnWidths(QObject):
    """Sizes ``table``'s columns; spreads them again whenever its viewport is resized.
    ``actions_width``: the width of a row's buttons."""

    def __init__(self, table: QTableView, actions_width: int) -> None:
        super().__init__(table)
        self.table = table
        self._actions_width = actions_width
        self._content: dict[int, int] = {}  # each column's width for its text (capped)
        table.viewport().installEventFilter(self)  # a new width spreads the columns

    def wanted(self) -> int:
        """The width every column's text wants, together."""
        return sum(self._content.values())

    def fit(self, columns: tuple[int, ...] | None = None) -> None:
        """Measure the columns' text (the view measures the rows in sight only), then
        spread them over the table's width."""
        if columns is None:
            self.table.resizeColumnsToContents()
            columns = tuple(range(len(FIELDS)))
        else:
            for c in columns:
                self.table.resizeColumnToContents(c)
        for c in columns:
            width = self.table.columnWidth(c)
            self._content[c] = min(width, MOST.get(c, width))
        self._content[STATE_COL] = max(self._content.get(STATE_COL, 0), STATE_WIDTH)
        self._content[ACTIONS_COL] = self._actions_width
        self.spread()

    def spread(self) -> None:
        """Every column as wide as its text while the table has room; else the key, the
        name and the memory give up width, each in proportion to what it has above its
        least (their text is shortened in the middle, whole in the tooltip), so the row
        buttons never leave the window."""
        widths = dict(self._content)
        excess = sum(widths.values()) - self.table.viewport().width()
        slack = {c: max(0, widths.get(c, 0) - least) for c, least in SHRINK.items()}
        if excess > 0 and sum(slack.values()) > 0:
            total = sum(slack.values())
            for c, spare in slack.items():
                widths[c] -= min(spare, -(-excess * spare // total))  # rounded up
        for c, width in widths.items():
            if self.table.columnWidth(c) != width:
                self.table.setColumnWidth(c, width)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Resize and watched is self.table.viewport():
            self.spread()
        return super().eventFilter(watched, event)
