"""Speed in the UI: the tooltip's "t/s", the models window's Speed column with its
sparkline, Reset speeds, and the Benchmark window (progress, Cancel, table, chart), with a
real tiny-model llama-server behind the app's API. Screenshots go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import httpx
from PySide6.QtCore import Qt

from app.core.bench.prompts import PromptSizes
from app.ui.models_table import HISTORY_ROLE, SPEED_COL
from tests.ui.test_tray_menu import table_rows

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _chat(arun, app, key: str, n: int, tokens: int) -> list[dict]:
    """``n`` chat requests through the app's API; the ``timings`` llama-server sent with each."""
    timings: list[dict] = []

    async def go() -> None:
        async with httpx.AsyncClient(base_url=app.core.api.url, timeout=60, trust_env=False) as c:
            for _ in range(n):
                body = {
                    "model": key,
                    "messages": [{"role": "user", "content": "Hello"}],
                    "max_tokens": tokens,
                    "ignore_eos": True,
                }
                r = await c.post("/v1/chat/completions", json=body)
                assert r.status_code == 200, r.text
                timings.append(r.json()["timings"])

    arun(go())
    return timings


def speed_words(timings: list[dict]) -> str:
    """The rolling speed the README promises, from the replies' own timings: tokens over
    generation time (replies of more than one token), "54.8 t/s" (from 1,000: "1,234 t/s")."""
    used = [t for t in timings if t["predicted_n"] > 1]
    v = sum(t["predicted_n"] for t in used) * 1000 / sum(t["predicted_ms"] for t in used)
    return f"{v:.1f} t/s" if v < 1000 else f"{v:,.0f} t/s"


def test_tooltip_and_models_window_show_the_speed(make_app, arun, wait, qtbot, tiny_model):
    app = make_app(LLM_MODEL_GGUF=str(tiny_model), API_ENABLED=True, API_PORT=0)
    key = app.core.catalogue.role("llm").key
    assert "t/s" not in app.tray.icon.toolTip()
    timings = _chat(arun, app, key, 6, 24)  # loads it just in time, then six timed replies
    assert [t["predicted_n"] for t in timings] == [24] * 6
    # the figures the replies carried, worked out here, not read from the app; the tooltip
    # follows the replies at most every SPEED_REDRAW_MS
    wait(lambda: f"LLM {speed_words(timings)}" in app.tray.icon.toolTip().splitlines())

    app.show_models()
    window = app.models_window
    qtbot.waitExposed(window)
    row = next(r for r in table_rows(window) if r["Key"] == key)
    assert row["Speed"].endswith(" t/s")
    r = window.model.row_of(key)
    history = window.model.data(window.model.index(r, SPEED_COL), HISTORY_ROLE)
    assert len(history) == 6 and all(v > 0 for v in history)
    tip = window.model.data(window.model.index(r, SPEED_COL), Qt.ItemDataRole.ToolTipRole)
    assert "6 requests, 144 tokens" in tip and "time to first token" in tip
    ARTIFACTS.mkdir(exist_ok=True)
    assert window.grab().save(str(ARTIFACTS / "models-window-speed.png"))

    # a reload keeps the figures; Reset speeds clears them everywhere
    arun(app.core.lifecycle.unload(key))
    arun(app.core.lifecycle.ensure(key))
    wait(lambda: app.core.lifecycle.ready(key) is not None)
    window.refresh()
    assert next(r for r in table_rows(window) if r["Key"] == key)["Speed"].endswith(" t/s")
    qtbot.mouseClick(window.reset_speeds_button, Qt.MouseButton.LeftButton)
    assert next(r for r in table_rows(window) if r["Key"] == key)["Speed"] == ""
    wait(lambda: "t/s" not in app.tray.icon.toolTip())


def test_benchmark_window_runs_cancels_and_draws(make_app, arun, wait, qtbot, tiny_model):
    app = make_app(LLM_MODEL_GGUF=str(tiny_model), API_ENABLED=True, API_PORT=0)
    key = app.core.catalogue.role("llm").key
    app.menu.rebuild()
    assert app.menu.act_benchmark.isEnabled()
    app.menu.act_benchmark.trigger()
    w = app.benchmark_window
    qtbot.waitExposed(w)
    w.sizes = PromptSizes(long_prompt_tokens=40, generate_tokens=32, short_tokens=16)
    assert w.model_box.currentData() == key
    w.runs_box.setValue(2)

    # Cancel while it runs: nothing kept, Start offered again
    seen: list[int] = []
    w.progress.valueChanged.connect(seen.append)
    task = w.start()
    assert task is not None and not w.start_button.isEnabled()
    wait(lambda: w.progress.maximum() == 6)
    qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
    wait(task.done)
    assert task.cancelled() and w.status.text() == "Cancelled."
    assert w.start_button.isEnabled() and w.table.rowCount() == 0

    qtbot.mouseClick(w.start_button, Qt.MouseButton.LeftButton)
    wait(lambda: w.task is not task and w.task.done(), timeout=120)
    assert w.task.exception() is None, w.status.text()
    assert w.progress.value() == w.progress.maximum() == 6
    assert w.table.rowCount() == 3
    cells = [w.table.item(r, 1).text() for r in range(3)]
    assert cells == ["short chat", "long prompt", "generate"]
    assert all("." in w.table.item(r, 3).text() for r in range(3))  # generation t/s
    assert w.chart.pixmap() is not None and not w.chart.pixmap().isNull()
    json_path, csv_path, png = w.saved
    assert json_path.exists() and csv_path.exists() and png.read_bytes()[:4] == b"\x89PNG"
    ARTIFACTS.mkdir(exist_ok=True)
    assert w.grab().save(str(ARTIFACTS / "benchmark-window.png"))


def test_a_burst_of_replies_redraws_the_tooltip_once(make_app, wait, tiny_model) -> None:
    # every reply used to build the whole tooltip; now one redraw follows a burst
    from app.core.models.stats import Sample

    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    key = app.core.catalogue.role("llm").key
    drawn: list[int] = []
    real = app._render_state
    app._render_state = lambda: (drawn.append(1), real())[-1]
    for i in range(50):
        app.core.stats.record(key, Sample(float(i), 10, 5.0, 20, 100.0))
    assert drawn == []
    wait(lambda: drawn)
    assert len(drawn) == 1 and app.core.stats.get(key).requests == 50
