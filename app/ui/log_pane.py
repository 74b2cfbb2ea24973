"""LogPane: one tab of the log window — a toolbar, a LogView and the follower feeding it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.logs.log_follow import FollowHandle, start_follow
from app.ui.log_view import LogView

READ_CHUNK = 256 * 1024  # a backlog reaches the view in batches of ~3,000 lines


class LogPane(QWidget):
    """A log view with search, filter, follow, copy, clear and "open folder"."""

    def __init__(
        self,
        max_lines: int,
        folder: Path,
        parent: QWidget | None = None,
        *,
        placeholder: str = "",
    ) -> None:
        super().__init__(parent)
        self.folder = Path(folder)
        self.path: Path | None = None
        self._handle: FollowHandle | None = None
        self.view = LogView(max_lines, self)
        if placeholder:
            self.view.setPlaceholderText(placeholder)

        self.search_box = QLineEdit(placeholderText="Search…", clearButtonEnabled=True)
        self.prev_button = QPushButton("◀", toolTip="Previous match (Shift+F3)")
        self.next_button = QPushButton("▶", toolTip="Next match (F3 or Enter)")
        self.match_label = QLabel()
        self.filter_box = QLineEdit(
            placeholderText="Only lines containing…", clearButtonEnabled=True
        )
        self.problems_only = QCheckBox("Warnings && errors only")
        self.follow_box = QCheckBox("Follow", checked=True)
        self.follow_box.setToolTip("Scroll with new lines; scrolling up pauses, the bottom resumes")
        self.wrap_box = QCheckBox("Wrap")
        self.copy_button = QPushButton("Copy", toolTip="Copy the selection, or all shown lines")
        self.clear_button = QPushButton("Clear view", toolTip="Empty this view; the file is kept")
        self.folder_button = QPushButton("Open log folder")
        self.status = QLabel()
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        for w in (self.search_box, self.prev_button, self.next_button, self.match_label):
            top.addWidget(w)
        top.addSpacing(12)
        top.addWidget(self.filter_box)
        top.addWidget(self.problems_only)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        for w in (
            self.follow_box,
            self.wrap_box,
            self.copy_button,
            self.clear_button,
            self.folder_button,
        ):
            bottom.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(bottom)

        self.search_box.textChanged.connect(self._on_search_changed)
        self.search_box.returnPressed.connect(self.find_next)
        self.next_button.clicked.connect(self.find_next)
        self.prev_button.clicked.connect(self.find_previous)
        QShortcut(QKeySequence("F3"), self, self.find_next)
        QShortcut(QKeySequence("Shift+F3"), self, self.find_previous)
        QShortcut(QKeySequence.StandardKey.Find, self, self.search_box.setFocus)
        self.filter_box.textChanged.connect(self._apply_filter)
        self.problems_only.toggled.connect(self._apply_filter)
        self.follow_box.toggled.connect(self.view.set_follow)
        self.view.followChanged.connect(self._on_follow_changed)
        self.wrap_box.toggled.connect(self._on_wrap)
        self.copy_button.clicked.connect(self.view.copy_text)
        self.clear_button.clicked.connect(self.view.clear_view)
        self.folder_button.clicked.connect(self.open_folder)

    # ── The file ──────────────────────────────────────────────────────────────
    def follow_file(self, path: Path, last_lines: int | None = None) -> FollowHandle:
        """Show ``path`` from its last lines on, and every line appended to it from now."""
        self.stop()
        self.path = Path(path)
        self.folder = self.path.parent
        self.status.setText(str(self.path))
        n = self.view.max_lines if last_lines is None else last_lines
        self._handle = start_follow(
            self.path, self.view.add_lines, last_lines=n, read_chunk=READ_CHUNK
        )
        return self._handle

    @property
    def handle(self) -> FollowHandle | None:
        return self._handle

    def stop(self) -> None:
        """Stop the follower (the tab or the window is closing, or another file is shown)."""
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    def open_folder(self) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder)))

    # ── Toolbar ───────────────────────────────────────────────────────────────
    def find_next(self) -> None:
        self._show_find(self.view.find())

    def find_previous(self) -> None:
        self._show_find(self.view.find(backward=True))

    def _show_find(self, found: bool) -> None:
        if self.view._search and not found:
            self.match_label.setText("no match")

    def _on_search_changed(self, text: str) -> None:
        n = self.view.set_search(text)
        self.match_label.setText(f"{n} match{'es' if n != 1 else ''}" if text else "")

    def _apply_filter(self, *_args) -> None:
        self.view.set_filter(self.filter_box.text(), self.problems_only.isChecked())

    def _on_follow_changed(self, on: bool) -> None:
        if self.follow_box.isChecked() != on:
            self.follow_box.blockSignals(True)
            self.follow_box.setChecked(on)
            self.follow_box.blockSignals(False)

    def _on_wrap(self, on: bool) -> None:
        mode = LogView.LineWrapMode.WidgetWidth if on else LogView.LineWrapMode.NoWrap
        self.view.setLineWrapMode(mode)
