"""LogView: a read-only, bounded, coloured log text view with follow, filter and search.

Lines arrive in batches (``add_lines``); they are kept in a bounded deque (for filtering)
and queued for display; the queue is drained in chunks, one chunk per event-loop turn,
each chunk inserted with a few ``QTextCursor.insertText`` calls (one per run of lines with
the same colour), never line by line. The document is trimmed from the top in one
removal per chunk: ``QPlainTextEdit.setMaximumBlockCount`` removes lines one at a time,
which measured ~25x slower under a log flood.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from PySide6.QtCore import QPoint, QTimer
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QGuiApplication,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

from app.core.logs.log_levels import LineLevel, classify

CHUNK_LINES = 1000  # lines inserted per event-loop turn: bounds the UI stall
MIN_FLUSH_GAP_MS = 30  # new lines are shown at most ~33 times a second (one repaint each)


class Callbacks:
    """A signal-like list of Python callbacks (``connect``/``emit``).

    Used instead of ``Signal`` on the hot path: cheaper, and immune to PySide6 6.12.0's
    ``Signal.emit()`` dropping a reference to ``True`` (Python 3.11 aborts after a few
    hundred emits there; the project pins PySide6 != 6.12.0 for this and more).
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def emit(self, *args) -> None:
        for cb in list(self._callbacks):
            cb(*args)


class LogView(QPlainTextEdit):
    """The text of one log.

    ``linesShown(list[str])`` is called after each inserted chunk (the bench measures with
    it); ``followChanged(bool)`` when follow mode pauses or resumes.
    """

    def __init__(self, max_lines: int = 20_000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.linesShown = Callbacks()
        self.followChanged = Callbacks()
        self.max_lines = max(1, int(max_lines))
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self._kept: deque[tuple[str, LineLevel]] = deque(maxlen=self.max_lines)
        self._pending: deque[tuple[str, LineLevel]] = deque(maxlen=self.max_lines)
        self._shown = 0  # lines in the document
        self._filter_text = ""
        self._problems_only = False
        self._search = ""
        self._follow = True
        self._scrolling = False
        self._formats = self._make_formats()
        self._last_flush = 0.0
        self._flush_timer = QTimer(self, singleShot=True, interval=0)
        self._flush_timer.timeout.connect(self._flush)
        self._hl_timer = QTimer(self, singleShot=True, interval=0)
        self._hl_timer.timeout.connect(self._update_highlights)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)

    # ── Feeding ───────────────────────────────────────────────────────────────
    def add_lines(self, lines: Iterable[str]) -> None:
        """Take a batch of lines (from a follower or a run); shown on the next loop turn."""
        items = [(line, classify(line)) for line in lines]
        if not items:
            return
        self._kept.extend(items)
        self._pending.extend(x for x in items if self._accepts(x))
        if self._pending and not self._flush_timer.isActive():
            since = (time.monotonic() - self._last_flush) * 1000
            self._flush_timer.start(max(0, int(MIN_FLUSH_GAP_MS - since)))

    def clear_view(self) -> None:
        """Empty the view (never the file): the kept lines go too, new ones still arrive."""
        self._kept.clear()
        self._pending.clear()
        self.document().clear()
        self._shown = 0
        self.setExtraSelections([])
        self.set_follow(True)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def kept_lines(self) -> list[str]:
        return [line for line, _ in self._kept]

    def shown_lines(self) -> list[str]:
        if self._shown == 0:
            return []
        return self.document().toPlainText().split("\n")

    @property
    def shown_count(self) -> int:
        return self._shown

    def _flush(self) -> None:
        if not self._pending:
            return
        self._last_flush = time.monotonic()
        n = min(CHUNK_LINES, len(self._pending))
        chunk = [self._pending.popleft() for _ in range(n)]
        doc = self.document()
        cur = QTextCursor(doc)
        cur.movePosition(QTextCursor.MoveOperation.End)
        cur.beginEditBlock()
        first = self._shown == 0
        run: list[str] = []
        level = chunk[0][1]
        for line, lv in chunk:
            if lv is not level:
                self._insert_run(cur, run, level, first)
                first = False
                run, level = [], lv
            run.append(line)
        self._insert_run(cur, run, level, first)
        self._shown += n
        self._drop_oldest()
        cur.endEditBlock()
        if self._follow:
            self._scroll_to_bottom()
        if self._search:
            self._hl_timer.start()
        if self.linesShown:
            self.linesShown.emit([line for line, _ in chunk])
        if self._pending:  # a backlog: the next chunk on the next loop turn
            self._flush_timer.start(0)

    def _drop_oldest(self) -> None:
        """Remove the lines shown beyond ``max_lines`` from the top, in one removal."""
        extra = self._shown - self.max_lines
        if extra > 0:
            doc = self.document()
            top = QTextCursor(doc)
            top.setPosition(
                doc.findBlockByNumber(extra).position(), QTextCursor.MoveMode.KeepAnchor
            )
            top.removeSelectedText()
            self._shown -= extra

    def set_max_lines(self, max_lines: int) -> None:
        """Keep at most ``max_lines`` lines from now on (LOG_VIEW_MAX_LINES changed); the
        oldest lines beyond it go at once."""
        n = max(1, int(max_lines))
        if n == self.max_lines:
            return
        self.max_lines = n
        self._kept = deque(self._kept, maxlen=n)
        self._pending = deque(self._pending, maxlen=n)
        self._drop_oldest()
        if self._follow:
            self._scroll_to_bottom()

    def _insert_run(self, cur: QTextCursor, run: list[str], level: LineLevel, first: bool) -> None:
        if run:
            text = "\n".join(run)
            cur.insertText(text if first else "\n" + text, self._formats[level])

    # ── Filter ────────────────────────────────────────────────────────────────
    def set_filter(self, text: str = "", problems_only: bool = False) -> None:
        """Show only lines containing ``text`` (any case) and/or only warnings and errors."""
        text = text.strip()
        if (text, problems_only) == (self._filter_text, self._problems_only):
            return
        self._filter_text, self._problems_only = text, problems_only
        self.document().clear()
        self._shown = 0
        self._pending.clear()
        self._pending.extend(x for x in self._kept if self._accepts(x))
        self.set_follow(True)
        if self._pending:
            self._flush_timer.start()

    def _accepts(self, item: tuple[str, LineLevel]) -> bool:
        line, level = item
        if self._problems_only and level is LineLevel.INFO:
            return False
        return not self._filter_text or self._filter_text.lower() in line.lower()

    # ── Follow mode ───────────────────────────────────────────────────────────
    @property
    def following(self) -> bool:
        return self._follow

    def set_follow(self, on: bool) -> None:
        if on:
            self._scroll_to_bottom()
        if on != self._follow:
            self._follow = on
            self.followChanged.emit(on)

    def _scroll_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        self._scrolling = True
        try:
            bar.setValue(bar.maximum())
        finally:
            self._scrolling = False

    def _on_scrolled(self, value: int) -> None:
        if self._search:
            self._hl_timer.start()
        if self._scrolling:
            return
        at_bottom = value >= self.verticalScrollBar().maximum()
        if at_bottom != self._follow:
            self._follow = at_bottom
            self.followChanged.emit(at_bottom)

    def _on_range_changed(self, _lo: int, _hi: int) -> None:
        if self._follow:
            self._scroll_to_bottom()

    # ── Search ────────────────────────────────────────────────────────────────
    def set_search(self, text: str) -> int:
        """Highlight ``text`` (any case) in the visible lines; the number of shown matches."""
        self._search = text
        self._update_highlights()
        return self.count_matches()

    def count_matches(self) -> int:
        if not self._search:
            return 0
        needle = self._search.lower()
        return self.document().toPlainText().lower().count(needle)

    def find(self, backward: bool = False) -> bool:
        """Select the next (or previous) match, wrapping around; pauses follow mode."""
        if not self._search:
            return False
        doc = self.document()
        flags = QTextDocument.FindFlag(0)
        if backward:
            flags |= QTextDocument.FindFlag.FindBackward
        found = doc.find(self._search, self.textCursor(), flags)
        if found.isNull():
            start = QTextCursor(doc)
            if backward:
                start.movePosition(QTextCursor.MoveOperation.End)
            found = doc.find(self._search, start, flags)
        if found.isNull():
            return False
        self.set_follow(False)
        self.setTextCursor(found)
        self.centerCursor()
        self._update_highlights()
        return True

    def current_match(self) -> str:
        return self.textCursor().selectedText()

    def highlighted(self) -> list[str]:
        """The texts highlighted as matches now (for tests and for the match counter)."""
        return [s.cursor.selectedText() for s in self.extraSelections()]

    def _update_highlights(self) -> None:
        if not self._search:
            self.setExtraSelections([])
            return
        needle = self._search.lower()
        first = self.firstVisibleBlock()
        last = self.cursorForPosition(QPoint(0, self.viewport().height() - 1)).block()
        stop = last.blockNumber()
        sels = []
        block = first
        current = self.textCursor()
        while block.isValid() and block.blockNumber() <= stop:
            hay = block.text().lower()
            i = hay.find(needle)
            while i >= 0:
                c = QTextCursor(block)
                c.setPosition(block.position() + i)
                c.setPosition(block.position() + i + len(needle), QTextCursor.MoveMode.KeepAnchor)
                sel = QTextEdit.ExtraSelection()
                sel.cursor = c
                is_current = (c.selectionStart(), c.selectionEnd()) == (
                    current.selectionStart(),
                    current.selectionEnd(),
                )
                sel.format = self._formats["current" if is_current else "match"]
                sels.append(sel)
                i = hay.find(needle, i + len(needle))
            block = block.next()
        self.setExtraSelections(sels)

    # ── Copy ──────────────────────────────────────────────────────────────────
    def copy_text(self) -> str:
        """Copy the selection, or every shown line when nothing is selected; returns it."""
        sel = self.textCursor().selectedText().replace("\u2029", "\n")
        text = sel or self.document().toPlainText()
        QGuiApplication.clipboard().setText(text)
        return text

    # ── Look ──────────────────────────────────────────────────────────────────
    def _make_formats(self) -> dict:
        dark = self.palette().color(QPalette.ColorRole.Base).lightness() < 128
        warn, err = QTextCharFormat(), QTextCharFormat()
        warn.setForeground(QColor("#e0a030" if dark else "#9a5b00"))
        err.setForeground(QColor("#ff6b6b" if dark else "#c01818"))
        match, current = QTextCharFormat(), QTextCharFormat()
        match.setBackground(QColor("#6b5d00" if dark else "#fff176"))
        current.setBackground(QColor("#b35900" if dark else "#ffa726"))
        return {
            LineLevel.INFO: QTextCharFormat(),
            LineLevel.WARNING: warn,
            LineLevel.ERROR: err,
            "match": match,
            "current": current,
        }

    def level_colour(self, level: LineLevel) -> QColor:
        return self._formats[level].foreground().color()
