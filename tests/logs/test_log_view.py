"""LogView and LogPane with pytest-qt: search, filter, colours, follow mode, the line cap."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication

from app.core.logs.log_levels import LineLevel, classify
from app.ui.log_pane import LogPane
from app.ui.log_view import LogView

INFO = "0.00.004.{:03d} I srv  llama_server: request {}"
WARN = "0.00.004.792 W srv  llama_server: CORS is set to allow all origins"
ERR = "0.00.005.001 E srv  load_model: cannot open the model"


def sample(n: int = 300) -> list[str]:
    out = []
    for i in range(n):
        if i % 50 == 10:
            out.append(WARN)
        elif i % 50 == 20:
            out.append(ERR)
        elif i % 50 == 30:
            out.append(f"0.00.004.{i % 1000:03d} I srv  needle number {i}")
        else:
            out.append(INFO.format(i % 1000, i))
    return out


@pytest.fixture
def view(qtbot) -> LogView:
    v = LogView(max_lines=20_000)
    qtbot.addWidget(v)
    v.resize(800, 300)
    v.show()
    qtbot.waitExposed(v)
    return v


def feed(qtbot, v: LogView, lines: list[str]) -> None:
    v.add_lines(lines)
    qtbot.waitUntil(lambda: v.pending == 0, timeout=20_000)


def test_classify_levels() -> None:
    assert classify(WARN) is LineLevel.WARNING
    assert classify(ERR) is LineLevel.ERROR
    assert classify(INFO.format(1, 1)) is LineLevel.INFO
    assert classify("0.00.01 I srv  operator(): Failed to bind") is LineLevel.ERROR
    assert (
        classify("2025-01-01 10:00:00,123 WARNING app.core.servers.manager: x") is LineLevel.WARNING
    )
    assert (
        classify("2025-01-01 10:00:00,123 ERROR   app.core.servers.manager: x") is LineLevel.ERROR
    )
    assert (
        classify("2025-01-01 10:00:00,123 INFO    app.core.servers.manager: ok") is LineLevel.INFO
    )
    assert classify("Traceback (most recent call last):") is LineLevel.ERROR


def test_lines_are_shown_in_order_in_batches(qtbot, view) -> None:
    chunks: list[list[str]] = []
    view.linesShown.connect(chunks.append)
    lines = sample(5000)
    feed(qtbot, view, lines)
    assert view.shown_lines() == lines
    assert 1 < len(chunks) < 10, "inserted in a few chunks, not line by line"


def test_search_finds_and_highlights(qtbot, view) -> None:
    lines = sample(300)
    feed(qtbot, view, lines)
    pane_count = view.set_search("NEEDLE")
    assert pane_count == sum("needle" in x for x in lines) == 6
    assert view.find()
    assert view.current_match().lower() == "needle"
    first = view.textCursor().blockNumber()
    assert "needle" in lines[first]
    hl = view.highlighted()
    assert hl and all(t.lower() == "needle" for t in hl), "visible matches are highlighted"
    assert view.find()
    second = view.textCursor().blockNumber()
    assert second > first and "needle" in lines[second]
    assert view.find(backward=True)
    assert view.textCursor().blockNumber() == first
    for _ in range(6):  # wraps around at the end
        assert view.find()
    assert view.textCursor().blockNumber() == first
    assert view.set_search("no such text") == 0
    assert not view.find()
    assert view.highlighted() == []


def test_filter_by_text_and_problems_only(qtbot, view) -> None:
    lines = sample(300)
    feed(qtbot, view, lines)
    view.set_filter("needle")
    qtbot.waitUntil(lambda: view.pending == 0)
    assert view.shown_lines() == [x for x in lines if "needle" in x]
    view.set_filter("", problems_only=True)
    qtbot.waitUntil(lambda: view.pending == 0)
    assert view.shown_lines() == [x for x in lines if x in (WARN, ERR)]
    feed(qtbot, view, ["0.00.09 I srv  fine", "0.00.10 W srv  new warning"])
    assert view.shown_lines()[-1] == "0.00.10 W srv  new warning"
    assert "0.00.09 I srv  fine" not in view.shown_lines()
    view.set_filter("")
    qtbot.waitUntil(lambda: view.pending == 0)
    assert len(view.shown_lines()) == 302


def test_warnings_and_errors_are_coloured(qtbot, view) -> None:
    feed(qtbot, view, [INFO.format(1, 1), WARN, ERR, INFO.format(2, 2)])
    doc = view.document()

    def colour(i: int):
        return doc.findBlockByNumber(i).begin().fragment().charFormat().foreground().color()

    assert colour(1) == view.level_colour(LineLevel.WARNING)
    assert colour(2) == view.level_colour(LineLevel.ERROR)
    assert colour(0) != colour(1) and colour(3) != colour(2)


def test_follow_pauses_on_scroll_up_and_resumes_at_the_bottom(qtbot, view) -> None:
    bar = view.verticalScrollBar()
    changes: list[bool] = []
    view.followChanged.connect(changes.append)
    feed(qtbot, view, sample(1000))
    assert view.following and bar.value() == bar.maximum() > 0
    bar.setValue(bar.maximum() - 200)  # the user scrolls up
    assert changes == [False] and not view.following
    held = bar.value()
    feed(qtbot, view, sample(500))
    assert bar.value() == held, "paused: new lines do not move the view"
    bar.setValue(bar.maximum())  # back at the bottom
    assert changes == [False, True]
    feed(qtbot, view, sample(500))
    assert view.following and bar.value() == bar.maximum()


def test_the_line_cap_holds(qtbot) -> None:
    v = LogView(max_lines=1000)
    qtbot.addWidget(v)
    lines = [f"line {i}" for i in range(7000)]
    for k in range(0, 7000, 700):
        v.add_lines(lines[k : k + 700])
    qtbot.waitUntil(lambda: v.pending == 0)
    assert v.shown_count == v.document().blockCount() == 1000
    assert v.shown_lines() == lines[-1000:]
    assert v.kept_lines == lines[-1000:]
    v.set_filter("line 69")
    qtbot.waitUntil(lambda: v.pending == 0)
    assert v.shown_lines() == [x for x in lines[-1000:] if "line 69" in x]


def test_a_new_line_cap_applies_to_a_view_at_once(qtbot) -> None:
    v = LogView(max_lines=1000)
    qtbot.addWidget(v)
    lines = [f"line {i}" for i in range(1500)]
    feed(qtbot, v, lines)
    v.set_max_lines(300)  # LOG_VIEW_MAX_LINES lowered in Settings…
    assert v.shown_count == v.document().blockCount() == 300
    assert v.shown_lines() == v.kept_lines == lines[-300:]
    v.set_max_lines(2000)  # raised: room for more from now on
    feed(qtbot, v, ["one more"])
    assert v.shown_lines() == [*lines[-300:], "one more"]


def test_clear_and_copy(qtbot, view) -> None:
    feed(qtbot, view, ["alpha", "beta"])
    assert view.copy_text() == "alpha\nbeta"
    assert QGuiApplication.clipboard().text() == "alpha\nbeta"
    view.clear_view()
    assert view.shown_lines() == [] and view.kept_lines == []
    feed(qtbot, view, ["gamma"])
    assert view.shown_lines() == ["gamma"]


class UrlRecorder(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_pane_toolbar(qtbot, tmp_path: Path) -> None:
    pane = LogPane(1000, tmp_path / "logs")
    qtbot.addWidget(pane)
    pane.show()
    pane.view.add_lines(sample(200))
    qtbot.waitUntil(lambda: pane.view.pending == 0)
    qtbot.keyClicks(pane.search_box, "needle")
    assert pane.match_label.text() == "4 matches"
    pane.next_button.click()
    assert pane.view.current_match() == "needle"
    assert not pane.follow_box.isChecked(), "jumping to a match pauses follow"
    pane.follow_box.setChecked(True)
    assert pane.view.following
    pane.problems_only.setChecked(True)
    qtbot.waitUntil(lambda: pane.view.pending == 0)
    assert set(pane.view.shown_lines()) == {WARN, ERR}
    recorder = UrlRecorder()
    QDesktopServices.setUrlHandler("file", recorder, "open")
    try:
        pane.folder_button.click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toLocalFile() for u in recorder.urls] == [str(tmp_path / "logs")]
    pane.clear_button.click()
    assert pane.view.shown_lines() == []
