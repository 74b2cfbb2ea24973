"""The first-run dialog with pytest-qt: discover, pick models, import a .env, write settings."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.discovery.folders import default_folders
from app.core.settings.first_run import first_run_reasons
from app.paths import AppPaths
from app.settings_load import load_settings
from app.ui.first_run import COLUMNS, FirstRunDialog, run_first_run
from tests.support.gguf_tree import build_tree, copy_model, write_mmproj
from tests.support.wait import until


@pytest.fixture
def paths() -> AppPaths:
    return AppPaths.resolve().ensure()


@pytest.fixture
def tree() -> dict[str, Path]:
    return build_tree(Path(os.environ["HOME"]))


@pytest.fixture
def dialog(qtbot, arun, paths, tree, llama_server_bin, monkeypatch):
    monkeypatch.setenv("LLAMA_SERVER_PATH", llama_server_bin)
    d = FirstRunDialog(load_settings(paths), paths, folders=default_folders())
    qtbot.addWidget(d)
    d.show()
    arun(d.scan())
    return d


def cell(d: FirstRunDialog, path: Path, column: str) -> str:
    for row, m in enumerate(d.models):
        if m.path == path:
            return d.table.item(row, COLUMNS.index(column)).text()
    raise KeyError(path)


def test_shows_the_server_version_and_the_models(dialog, tree, llama_server_bin) -> None:
    assert dialog.choice.server_path == llama_server_bin
    assert "Found llama-server version" in dialog.server_status.text()
    assert dialog.server_combo.currentText().startswith(llama_server_bin)
    assert dialog.table.rowCount() == 8
    assert cell(dialog, tree["qwen_vl"], "Architecture") == "qwen3vl"
    assert cell(dialog, tree["qwen_vl"], "Parameters") == "8B"
    assert cell(dialog, tree["qwen_vl"], "Quantization") == "Q4_K_M"
    assert cell(dialog, tree["qwen_vl"], "Context") == "262,144"
    assert cell(dialog, tree["qwen_vl"], "Vision") == tree["qwen_vl_mmproj"].name
    assert cell(dialog, tree["qwen_llm"], "Vision") == ""
    assert "Skipped" in dialog.scan_label.text() and "broken.gguf" in dialog.scan_label.text()


def test_the_columns_fit_their_content(dialog) -> None:
    table, header = dialog.table, dialog.table.horizontalHeader()
    for col, name in enumerate(COLUMNS):
        assert header.sectionSize(col) >= table.sizeHintForColumn(col), name
    assert not table.wordWrap()


def test_pick_models_and_save_writes_settings(dialog, qtbot, tree, paths, llama_server_bin):
    dialog.select_model(tree["gemma_q8"])
    qtbot.mouseClick(dialog.vision_button, Qt.MouseButton.LeftButton)
    dialog.select_model(tree["hf"])
    qtbot.mouseClick(dialog.llm_button, Qt.MouseButton.LeftButton)
    assert str(tree["gemma_mmproj"]) in dialog.vision_label.text()
    assert dialog.save_button.isEnabled()
    with qtbot.waitSignal(dialog.settings_written, timeout=5000) as sig:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert sig.args == [str(paths.settings_file)]
    assert dialog.result() == dialog.DialogCode.Accepted
    s = load_settings(paths)
    assert str(tree["gemma_q8"]) == s.VISION_MODEL_GGUF
    assert str(tree["gemma_mmproj"]) == s.VISION_MMPROJ
    assert str(tree["hf"]) == s.LLM_MODEL_GGUF
    assert llama_server_bin == s.LLAMA_SERVER_PATH
    assert first_run_reasons(s, paths) == []


def test_default_picks_a_vision_model_with_mmproj_and_an_llm(dialog) -> None:
    c = dialog.choice
    vision = next(m for m in dialog.models if str(m.path) == c.vision_model)
    assert vision.vision and c.vision_mmproj == str(vision.mmproj)
    llm = next(m for m in dialog.models if str(m.path) == c.llm_model)
    assert not llm.vision


def test_add_folder_rescans(dialog, arun, qtbot, tmp_path, tiny_model) -> None:
    extra = tmp_path / "my-models"
    model = copy_model(tiny_model, extra / "own-vl-Q8_0.gguf")
    mmproj = write_mmproj(extra / "own-vl-mmproj-f16.gguf")
    dialog.ask_folder = lambda: str(extra)
    qtbot.mouseClick(dialog.add_folder_button, Qt.MouseButton.LeftButton)
    arun(dialog.wait_idle())
    assert cell(dialog, model, "Vision") == mmproj.name
    assert cell(dialog, model, "Source") == "added folder"
    dialog.select_model(model)
    dialog.use_selected_for_vision()
    assert dialog.choice.vision_mmproj == str(mmproj)


def test_import_familylog_env(dialog, arun, tmp_path, tiny_model, paths) -> None:
    fl = tmp_path / "FamilyLog"
    llm = copy_model(tiny_model, tmp_path / "models" / "qwen3.5-27b-Q4_K_M.gguf")
    fl.mkdir()
    (fl / ".env").write_text(
        f"LLM_MODEL_GGUF={llm}\nVISION_MODEL_GGUF=/models/not-here.gguf\nLLAMA_CTX_SIZE=4096\n"
    )
    dialog.ask_env = lambda: str(fl / ".env")
    dialog.import_button.click()
    arun(dialog.wait_idle())
    assert dialog.choice.llm_model == str(llm)
    assert "VISION_MODEL_GGUF=/models/not-here.gguf" in dialog.message_label.text()
    assert llm in [m.path for m in dialog.models], "the .env's model folder is scanned too"
    assert dialog.save()
    s = load_settings(paths)
    assert str(llm) == s.LLM_MODEL_GGUF and s.LLAMA_CTX_SIZE == 4096
    assert Path(s.FAMILYLOG_DIR) == fl.resolve()


def test_save_is_refused_without_a_server(qtbot, qloop, paths, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLAMA_SERVER_PATH", str(tmp_path / "nowhere" / "llama-server"))
    monkeypatch.setenv("PATH", str(tmp_path))
    d = FirstRunDialog(load_settings(paths), paths, folders=[])
    qtbot.addWidget(d)
    d.servers = []
    d._server_changed(-1)
    assert "No llama-server found" in d.server_status.text()
    assert not d.save_button.isEnabled()
    assert d.save() is False
    assert "Choose a llama-server binary" in d.message_label.text()
    assert not paths.settings_file.exists()


def test_run_first_run_returns_when_saved(qtbot, arun, paths, tree, llama_server_bin, monkeypatch):
    from PySide6.QtWidgets import QApplication

    monkeypatch.setenv("LLAMA_SERVER_PATH", llama_server_bin)

    async def drive() -> bool:
        task = asyncio.ensure_future(run_first_run(load_settings(paths), paths))
        dlg = None

        def found():
            nonlocal dlg
            dlg = next(
                (
                    w
                    for w in QApplication.topLevelWidgets()
                    if isinstance(w, FirstRunDialog) and w.isVisible()
                ),
                None,
            )
            return dlg is not None and dlg.table.rowCount() > 0

        await until(found, 30)  # the dialog shows its models
        dlg.save_button.click()
        return await asyncio.wait_for(task, 30)

    assert arun(drive(), 90) is True
    assert paths.settings_file.is_file()


def test_the_dialog_and_the_start_pick_the_same_llama_server(
    qtbot, arun, paths, llama_server_bin, monkeypatch, tmp_path
) -> None:
    """No LLAMA_SERVER_PATH, nothing on PATH, in Homebrew's folder or at the seed's
    /usr/local/bin, no wheel; a llama.cpp build in the home folder. The two old orders
    disagreed here: the start took the seed's missing path (the seed's, PATH, the wheel)
    while this dialog offered the build. One order now: the dialog, the set-up check and
    the core all take the build."""
    from app.config import SEED_LLAMA_SERVER_PATH
    from app.core.discovery import server
    from tests.support.app import make_core

    build = Path(os.environ["HOME"]) / "llama.cpp" / "build" / "bin" / "llama-server"
    build.parent.mkdir(parents=True)
    build.symlink_to(llama_server_bin)
    monkeypatch.delenv("LLAMA_SERVER_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(server, "wheel_binary", lambda: None)  # as where it is not installed
    monkeypatch.setattr(server, "SYSTEM_DIRS", (tmp_path / "homebrew", tmp_path / "usr-local"))
    expected = SEED_LLAMA_SERVER_PATH if Path(SEED_LLAMA_SERVER_PATH).is_file() else str(build)

    settings = load_settings(paths)
    d = FirstRunDialog(settings, paths, folders=[])
    qtbot.addWidget(d)
    arun(d.scan())
    assert d.choice.server_path == expected, d.server_status.text()
    assert "Found llama-server version" in d.server_status.text()
    assert not [r for r in first_run_reasons(settings, paths) if "llama-server" in r]
    assert make_core(settings, paths=paths).manager.server_path == expected
