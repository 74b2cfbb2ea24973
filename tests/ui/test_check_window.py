"""The "Check models…" window, opened from the tray menu of a real app (its API, real
llama-servers, the tiny vision pair): Start shows what runs, then the table with pass/fail
coloured; Cancel leaves nothing loaded; a FamilyLog run holding a model is named instead."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from app.core.check.report import PASS
from app.ui.check_window import ALL, COLORS, FAMILYLOG, CheckWindow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _open(app, qtbot) -> CheckWindow:
    """The window as the user opens it: "Check models…" in the tray menu."""
    app.menu.rebuild()
    assert app.menu.act_check.text() == "Check models…"
    app.menu.act_check.trigger()
    w = app.check_window
    assert w is not None
    qtbot.waitExposed(w)
    return w


def test_check_window_runs_shows_and_cancels(
    make_app, arun, wait, qtbot, tiny_vision, tiny_model_b
):
    model, mmproj = tiny_vision
    app = make_app(
        VISION_MODEL_GGUF=str(model),
        VISION_MMPROJ=str(mmproj),
        VISION_MODEL_ID="tiny/vision",
        LLM_MODEL_GGUF=str(tiny_model_b),
        VISION_LOAD_AT_START="false",
        API_ENABLED=True,
        API_PORT=0,
        RUN_MODE="switch",
    )
    w = _open(app, qtbot)
    offered = [w.which_box.itemData(i) for i in range(w.which_box.count())]
    assert offered[:2] == [FAMILYLOG, ALL] and "tiny/vision" in offered

    # Cancel while it runs: what it loaded is unloaded, Start is offered again
    task = w.start()
    assert task is not None and not w.start_button.isEnabled()
    wait(lambda: "an image" in w.status.text() or task.done(), timeout=60)
    qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
    wait(task.done, timeout=60)
    assert task.cancelled() and w.status.text().startswith("Cancelled")
    assert w.start_button.isEnabled() and not app.core.lifecycle.loaded()

    qtbot.mouseClick(w.start_button, Qt.MouseButton.LeftButton)
    wait(lambda: w.task is not task and w.task.done(), timeout=120)
    assert w.task.exception() is None and w.report is not None, w.status.text()
    assert w.report.ok, w.status.text()
    assert w.status.text() == "All checks passed."
    rows = [[w.table.item(r, c).text() for c in range(4)] for r in range(w.table.rowCount())]
    assert rows[0][:3] == ["tiny/vision", "load", PASS]
    assert [r[1] for r in rows[1:4]] == ["chat", "image", "unload"]
    assert rows[-1][1] == "each has its log file"
    assert w.table.item(0, 2).foreground().color().name() == COLORS[PASS]
    assert not app.core.lifecycle.loaded()
    ARTIFACTS.mkdir(exist_ok=True)
    assert w.grab().save(str(ARTIFACTS / "check-window.png"))


def test_check_window_names_a_run_that_holds_a_model(make_app, arun, wait, qtbot, tiny_model):
    app = make_app(LLM_MODEL_GGUF=str(tiny_model), API_ENABLED=True, API_PORT=0)
    inst = arun(app.core.lifecycle.ensure(app.core.catalogue.role("llm")))
    app.core.lifecycle.hold(inst, "familylog-run")
    w = _open(app, qtbot)
    w.start()
    wait(w.task.done, timeout=60)
    assert w.status.text().startswith("Not checked: a FamilyLog run is using")
    assert w.table.rowCount() == 0
    app.core.lifecycle.release("familylog-run")
