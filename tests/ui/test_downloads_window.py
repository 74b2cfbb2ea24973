"""The "Get models…" window against the stand-in hub: search, a repository's models with
sizes and fit, get one with a progress bar, cancel, and a refusal shown in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QProgressBar, QPushButton

from app.core.downloads.jobs import CANCELLED, COMPLETED
from tests.support import hub as hub_support
from tests.support.downloads import GB, Rig
from tests.support.hub import LLM_REPO, VISION_REPO, StandInHub, serve_pair

hub = hub_support.hub  # the fixtures
hub_files = hub_support.hub_files


@pytest.fixture
def window(qtbot, arun, tmp_path: Path, hub: StandInHub, hub_files):
    from app.ui.downloads_window import GetModelsWindow

    serve_pair(hub, hub_files)
    rig = Rig(tmp_path)
    service = rig.service()
    arun(service.start())
    w = GetModelsWindow(service)
    qtbot.addWidget(w)
    w.show()
    w.rig = rig
    yield w
    arun(service.stop())


def cells(table, row: int) -> list[str]:
    return [
        table.item(row, c).text() if table.item(row, c) else "" for c in range(table.columnCount())
    ]


def test_search_files_fit_and_get(window, arun, wait, hub_files):
    window.search_box.setText("qwen")
    arun(window.search())
    assert [window.results.item(r, 0).text() for r in range(window.results.rowCount())] == [
        LLM_REPO,
        VISION_REPO,
    ]
    window.results.selectRow(1)  # opens the vision repository
    arun(window.wait_idle())
    assert window.files is not None and window.files.repo == VISION_REPO
    rows = [cells(window.file_table, r) for r in range(window.file_table.rowCount())]
    assert [r[0] for r in rows] == [
        "Qwen3VL-8B-Instruct-Q8_0.gguf",
        "Qwen3VL-8B-Instruct-Q4_K_M.gguf",
    ]
    assert {r[3] for r in rows} == {"mmproj-Qwen3VL-8B-Instruct-F16.gguf"}
    assert all(r[4] == "✔ fits" for r in rows), rows
    assert "16 GB available RAM" in window.file_table.item(0, 4).toolTip()

    window.select_model("Qwen3VL-8B-Instruct-Q4_K_M.gguf")
    assert window.get_button.isEnabled()
    arun(window.get_selected())
    [job] = window.downloads.jobs()
    wait(lambda: job.state == COMPLETED)
    window.refresh_queue()
    assert cells(window.queue, 0)[:3] == ["Qwen3VL-8B-Instruct-Q4_K_M.gguf", VISION_REPO, COMPLETED]
    bar = window.queue.cellWidget(0, 3)
    assert isinstance(bar, QProgressBar) and bar.value() == bar.maximum()
    assert window.queue.cellWidget(0, 6) is None  # no Cancel once done
    # Getting it again says where it is.
    arun(window.get_selected())
    assert "downloaded already" in window.message.text()


def test_fit_says_when_a_model_does_not_fit(window, arun):
    window.rig.free_ram = 1 * GB
    arun(window.open_repo(VISION_REPO))
    arun(window.wait_idle())
    texts = {window.file_table.item(r, 4).text() for r in range(window.file_table.rowCount())}
    assert texts == {"✘ does not fit"}


def test_cancel_from_the_queue(window, arun, wait, hub: StandInHub, hub_files):
    half = hub_files["llm_q8"].stat().st_size // 2
    held = hub.hold("Qwen3-8B-Q8_0.gguf", at=half)
    arun(window.open_repo(LLM_REPO))
    arun(window.wait_idle())
    window.select_model("Qwen3-8B-Q8_0.gguf")
    arun(window.get_selected())
    [job] = window.downloads.jobs()
    wait(lambda: held.is_set() and job.downloaded == half)
    window.refresh_queue()
    bar = window.queue.cellWidget(0, 3)
    assert 400 <= bar.value() <= 600  # about half
    button = window.queue.cellWidget(0, 6)
    assert isinstance(button, QPushButton) and button.text() == "Cancel"
    button.click()
    wait(lambda: job.state == CANCELLED)


def test_a_refusal_is_one_line_in_the_window(window, arun):
    window.rig.free_disk = 1000
    arun(window.open_repo(LLM_REPO))
    arun(window.wait_idle())
    window.select_model("Qwen3-8B-Q8_0.gguf")
    arun(window.get_selected())
    assert window.message.text().startswith("Not enough disk space for Qwen3-8B-Q8_0.gguf")
    assert window.downloads.jobs() == []


def test_tray_menu_opens_get_models_and_the_tooltip_shows_the_download(
    make_app, arun, wait, qtbot, tmp_path: Path, hub: StandInHub, hub_files
):
    serve_pair(hub, hub_files)
    app = make_app(MODEL_DIRS=str(tmp_path / "models"))
    app.menu.rebuild()
    assert app.menu.act_get_models.isEnabled()
    app.menu.act_get_models.trigger()
    window = app.get_models_window
    assert window is not None and window.isVisible()
    assert window.downloads is app.core.downloads

    half = hub_files["llm_q8"].stat().st_size // 2
    held = hub.hold("Qwen3-8B-Q8_0.gguf", at=half)
    job = arun(app.core.downloads.request(LLM_REPO, quant="Q8_0"))
    wait(lambda: held.is_set() and job.downloaded == half)
    # Told through the service's listeners (a few times a second), not asked for.
    wait(lambda: "Downloading Qwen3-8B-Q8_0.gguf: 192 KB of 383 KB" in app.tray.icon.toolTip())
    hub.release("Qwen3-8B-Q8_0.gguf")
    wait(lambda: job.state == COMPLETED)
    wait(lambda: "Downloading" not in app.tray.icon.toolTip())
    # Listed: the menu offers it under Other models.
    app.menu.rebuild()
    assert "qwen/qwen3-8b" in app.menu.other_actions


def test_the_models_window_offers_get_models(make_app, qtbot):
    app = make_app()
    app.show_models()
    button = app.models_window.get_models_button
    assert button.isEnabled()
    button.click()
    assert app.get_models_window is not None and app.get_models_window.isVisible()
