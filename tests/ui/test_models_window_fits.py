"""The models window fits a 1280x800 and a 1366x768 screen at its default size, with the
long keys of a real LM Studio folder: every column, the row buttons and "Reset speeds" in
sight, no horizontal scroll bar, a long key shortened in its middle with the whole key in
its tooltip. One screenshot per screen in test-artifacts/.

The window takes its default size from the screen's free area (``fit_to``, which it calls
with its own screen's); here that area is a laptop's, less a 48 px panel.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, Qt

from app.ui.models_table import ACTIONS_COL, COLUMNS
from tests.support.tiny_model import write_tiny_model

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PANEL = 48  # a desktop panel or dock: what the window may not cover
KEY_COL = COLUMNS.index("Key")
# How LM Studio lays out real downloads (two quants of one model: keys end in @quant).
FILES = (
    "lmstudio-community/Qwen3-VL-30B-A3B-Instruct-GGUF/Qwen3-VL-30B-A3B-Instruct-Q4_K_M.gguf",
    "lmstudio-community/Qwen3-VL-30B-A3B-Instruct-GGUF/Qwen3-VL-30B-A3B-Instruct-Q8_0.gguf",
    "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q6_K_L.gguf",
    "unsloth/gemma-3-27b-it-GGUF/gemma-3-27b-it-UD-Q4_K_XL.gguf",
    "mradermacher/DeepSeek-R1-Distill-Qwen-14B-Uncensored-GGUF/"
    "DeepSeek-R1-Distill-Qwen-14B-Uncensored.Q5_K_M.gguf",
)


@pytest.fixture
def long_keys_app(make_app, tmp_path):
    root = tmp_path / "models"
    paths = []
    for i, rel in enumerate(FILES):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(write_tiny_model(path, seed=20 + i, name=path.stem))
    return make_app(
        MODEL_DIRS=str(root),
        VISION_MODEL_GGUF=str(paths[0]),
        LLM_MODEL_GGUF=str(paths[2]),
        VISION_MODEL_ID="qwen/qwen3-vl-30b-a3b-instruct",
        LLM_MODEL_ID="meta-llama/meta-llama-3.1-8b-instruct",
    )


def inside(widget, outer) -> bool:
    """``widget`` is shown, and all of it lies within ``outer``'s rectangle."""
    top_left = widget.mapTo(outer, QPoint(0, 0))
    return widget.isVisible() and outer.rect().contains(QRect(top_left, widget.size()))


@pytest.mark.parametrize("screen", [(1280, 800), (1366, 768)], ids=["1280x800", "1366x768"])
def test_the_models_window_fits_the_screen(long_keys_app, screen, wait, qapp) -> None:
    app = long_keys_app
    longest = max((e.key for e in app.core.catalogue.entries()), key=len)
    assert len(longest) > 50, longest  # a real LM Studio key
    app.show_models()
    window = app.models_window
    # one model loaded: its state, memory and details ("port … · PID …") take room too
    loaded = app.core.catalogue.role("llm").key
    app.load(loaded)
    row_of = window.model.row_of
    wait(lambda: "KV" in window.model.rows[row_of(loaded)].memory)  # the log's split too

    free = QRect(0, 0, screen[0], screen[1] - PANEL)
    window.fit_to(free)
    qapp.processEvents()  # the view's posted layout work: scroll bar ranges, widget places

    assert window.width() <= free.width() and window.height() <= free.height()
    table = window.table
    bar = table.horizontalScrollBar()
    assert not bar.isVisible() and bar.maximum() == 0
    room = table.viewport().width()
    for c in range(len(COLUMNS)):
        right = table.columnViewportPosition(c) + table.columnWidth(c)
        assert right <= room, (COLUMNS[c], right, room)
    for key, actions in window.row_actions.items():
        assert inside(actions.load, table.viewport()), key
        assert inside(actions.unload, table.viewport()), key
    assert table.columnWidth(ACTIONS_COL) >= window.row_actions[loaded].sizeHint().width()
    assert inside(window.reset_speeds_button, window)
    assert inside(window.rescan_button, window)

    # a key longer than its column: shortened in the middle, whole in the tooltip
    row = window.model.row_of(longest)
    index = window.model.index(row, KEY_COL)
    assert table.columnWidth(KEY_COL) < table.fontMetrics().horizontalAdvance(longest)
    assert table.textElideMode() is Qt.TextElideMode.ElideMiddle
    assert longest in window.model.data(index, Qt.ItemDataRole.ToolTipRole)

    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / f"models-window-{screen[0]}x{screen[1]}.png"
    assert window.grab().save(str(out))
