"""The tray menu and the models window in model terms, over an LM Studio-style tree of three
real tiny GGUFs plus FamilyLog's two roles, with the real llama-server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QProgressBar

from app.ui.models_table import ACTIONS_COL
from tests.conftest import llama_children
from tests.support.tiny_model import write_tiny_model
from tests.ui.test_tray_menu import menu_texts, table_rows

OTHERS = ["bartowski/beta-2b", "gamma-loose", "lmstudio-community/alpha-1b"]  # by key
PORTISH = re.compile(r":\d{2,5}\b|\bPID\b|\bport\b", re.IGNORECASE)


@pytest.fixture
def lms_tree(tmp_path: Path) -> Path:
    """Three real models the way LM Studio stores them: publisher/model-folder/file."""
    root = tmp_path / "lms-models"
    files = {
        "lmstudio-community/alpha-1b": root / "lmstudio-community/Alpha-1B-GGUF/Alpha-1B-Q8_0.gguf",
        "bartowski/beta-2b": root / "bartowski/beta-2b-GGUF/beta-2b-F32.gguf",
        "gamma-loose": root / "gamma-loose.gguf",
    }
    for i, (key, path) in enumerate(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tiny_model(path, seed=10 + i, name=key.rsplit("/", 1)[-1])
    return root


@pytest.fixture
def tree_app(make_app, lms_tree, tiny_model, tiny_model_b):
    def make(**over):
        return make_app(
            LLM_MODEL_GGUF=str(tiny_model),
            VISION_MODEL_GGUF=str(tiny_model_b),
            MODEL_DIRS=str(lms_tree),
            **over,
        )

    return make


def no_ports_in_menu(app) -> None:
    ports = {str(i.port) for i in app.core.lifecycle.snapshot()}
    ports |= {str(app.core.settings.LLAMA_LLM_PORT), str(app.core.settings.LLAMA_VISION_PORT)}
    texts = menu_texts(app.menu) + [app.tray.icon.toolTip()]
    bad = [t for t in texts if PORTISH.search(t) or any(p in t for p in ports)]
    assert not bad, bad


def test_menu_speaks_in_models_and_loads_from_other_models(tree_app, wait) -> None:
    app = tree_app()
    menu = app.menu
    menu.rebuild()
    assert set(menu.profile_actions) == {"vision", "llm"}
    assert menu.profile_actions["vision"].action.text() == "Load Vision"
    assert menu.profile_actions["llm"].action.text() == "Load LLM"
    assert menu.other_menu.title() == "Other models" and menu.other_menu.isEnabled()
    assert list(menu.other_actions) == OTHERS  # nothing used yet: the catalogue's order
    assert [a.text() for a in menu.other_menu.actions()] == [
        "Load beta-2b",
        "Load gamma-loose",
        "Load alpha-1b",
    ]
    assert menu.act_status.text() == "Nothing loaded"
    no_ports_in_menu(app)

    alpha_key = "lmstudio-community/alpha-1b"
    menu.other_actions[alpha_key].load.trigger()
    wait(lambda: app.core.lifecycle.ready(alpha_key) is not None)
    inst = app.core.lifecycle.ready(alpha_key)
    assert [p.pid for p in llama_children()] == [inst.pid]  # one process
    assert inst.status.spec.model_path.endswith("Alpha-1B-Q8_0.gguf")
    wait(lambda: not app.core.lifecycle.is_busy(alpha_key))

    menu.rebuild()
    alpha = menu.other_actions[alpha_key]
    assert alpha.load is None and alpha.unload.isEnabled()
    assert alpha.unload.text() == "Unload alpha-1b (ready)"
    assert list(menu.other_actions)[0] == alpha_key  # loaded ones first
    # the memory it holds, once the monitor has probed it (it does when a model comes)
    wait(lambda: (menu.rebuild(), " · " in menu.act_status.text())[1])
    assert re.fullmatch(r"alpha-1b ready · [\d.<]+ ?[MG]B (RAM|VRAM)", menu.act_status.text())
    for role in ("vision", "llm"):
        assert menu.profile_actions[role].load.isEnabled()
    no_ports_in_menu(app)

    menu.other_actions[alpha_key].unload.trigger()
    wait(lambda: app.core.lifecycle.instance(alpha_key) is None)
    menu.rebuild()
    # unloaded, it stays first: the most recently used of the others
    assert list(menu.other_actions) == [alpha_key, *OTHERS[:2]]
    assert menu.other_actions[alpha_key].load.isEnabled()
    assert menu.act_status.text() == "Nothing loaded"


def test_models_window_lists_filters_loads_and_unloads(tree_app, wait, qtbot) -> None:
    app = tree_app()
    app.show_models()
    window = app.models_window
    rows = table_rows(window)
    keys = [r["Key"] for r in rows]
    roles = app.core.catalogue.roles()
    assert keys == [roles["vision"].key, roles["llm"].key, *OTHERS]
    assert [r["Role"] for r in rows] == ["Vision", "LLM", "", "", ""]
    assert {r["State"] for r in rows} == {"not loaded"}
    assert {r["Details"] for r in rows} == {""}
    alpha = next(r for r in rows if r["Key"] == "lmstudio-community/alpha-1b")
    assert alpha == alpha | {"Name": "alpha-1b", "Type": "LLM", "Context": "2,048"}
    assert alpha["Size"].endswith("KB") and alpha["Quant"]

    # the filter matches the name and the key
    window.filter_box.setText("GAMMA")
    assert [r["Key"] for r in table_rows(window)] == ["gamma-loose"]
    window.filter_box.setText("bartowski/")
    assert [r["Key"] for r in table_rows(window)] == ["bartowski/beta-2b"]
    window.filter_box.setText("no such model")
    assert table_rows(window) == []
    window.filter_box.clear()
    assert len(table_rows(window)) == 5

    # Load from the row: it moves to the top, its port and PID in the details only
    qtbot.mouseClick(window.row_actions["gamma-loose"].load, Qt.MouseButton.LeftButton)
    wait(lambda: table_rows(window)[0]["State"] == "ready")
    inst = app.core.lifecycle.ready("gamma-loose")
    top = table_rows(window)[0]
    assert top["Key"] == "gamma-loose"
    assert top["Details"] == f"port {inst.port} · PID {inst.pid}"
    others = {k: v for k, v in top.items() if k != "Details"}
    assert not [v for v in others.values() if str(inst.port) in v or str(inst.pid) in v]
    # the memory it holds and the server log's split, read off the UI thread
    wait(lambda: "KV" in table_rows(window)[0]["Memory"])
    assert re.fullmatch(
        r"[\d.<]+ ?[MG]B (RAM|VRAM) \(model [\d.]+ · KV [\d.]+ · compute [\d.]+ MiB\)",
        table_rows(window)[0]["Memory"],
    ), table_rows(window)[0]["Memory"]
    wait(lambda: window.row_actions["gamma-loose"].unload.isEnabled())
    gamma = window.row_actions["gamma-loose"]
    assert not gamma.load.isEnabled() and not gamma.cancel.isVisible()
    # the buttons moved with their row
    for r, row in enumerate(window.model.rows):
        cell = window.table.indexWidget(window.model.index(r, ACTIONS_COL))
        assert cell is window.row_actions[row.key]

    # the filter still works after the move, and the GPU panel names the model
    window.filter_box.setText("alpha")
    assert [r["Key"] for r in table_rows(window)] == ["lmstudio-community/alpha-1b"]
    window.filter_box.clear()

    qtbot.mouseClick(gamma.unload, Qt.MouseButton.LeftButton)
    wait(lambda: app.core.lifecycle.instance("gamma-loose") is None)
    wait(lambda: [r["Key"] for r in table_rows(window)] == keys)  # back in its place
    assert {r["Details"] for r in table_rows(window)} == {""}
    wait(lambda: window.row_actions["gamma-loose"].load.isEnabled())
    assert llama_children() == []


def test_cancel_stops_a_load_that_never_gets_ready(tree_app, wait, qtbot, tmp_path) -> None:
    """A stand-in server that never answers ready (a real one cannot be made to hang on
    cue): the row shows the elapsed time and a busy bar, and Cancel stops its process."""
    from tests.support.fakes import never_ready_server

    server = never_ready_server(tmp_path / "llama-server")
    app = tree_app(LLAMA_SERVER_PATH=str(server))
    app.show_models()
    window = app.models_window
    key = OTHERS[0]
    qtbot.mouseClick(window.row_actions[key].load, Qt.MouseButton.LeftButton)
    wait(lambda: key in window.loading_cells)
    wait(lambda: (app.core.lifecycle.instance(key) or False) and bool(llama_children()))
    cell = window.loading_cells[key]
    assert isinstance(cell.bar, QProgressBar) and cell.bar.maximum() == 0  # indeterminate
    wait(lambda: table_rows(window)[0]["Key"] == key)
    wait(lambda: cell.label.text().startswith("loading 0:0"))
    buttons = window.row_actions[key]
    assert buttons.cancel.isVisible() and buttons.cancel.isEnabled()
    assert not buttons.load.isEnabled()
    app.menu.rebuild()
    offered = app.menu.other_actions[key]
    assert offered.kind == "cancel" and offered.action.isEnabled()
    assert offered.action.text().startswith("Cancel loading")  # the menu can stop it too

    qtbot.mouseClick(buttons.cancel, Qt.MouseButton.LeftButton)
    wait(lambda: app.core.lifecycle.instance(key) is None and not llama_children())
    wait(lambda: key not in window.loading_cells)
    row = next(r for r in table_rows(window) if r["Key"] == key)
    assert row["State"] == "not loaded"
    wait(lambda: window.row_actions[key].load.isEnabled())
    assert not window.row_actions[key].cancel.isVisible()
    assert app.core.manager.get_loaded_models() == {}


def test_the_menu_cancels_a_load_that_never_gets_ready(tree_app, wait, tmp_path) -> None:
    """While the LLM loads, its one menu action is "Cancel loading LLM", and it stops it."""
    from tests.support.fakes import never_ready_server

    server = never_ready_server(tmp_path / "llama-server")
    app = tree_app(LLAMA_SERVER_PATH=str(server))
    key = app.core.catalogue.role("llm").key
    app.load(key)

    def offers_cancel() -> bool:
        app.menu.rebuild()
        return app.menu.profile_actions["llm"].kind == "cancel"

    wait(offers_cancel)
    action = app.menu.profile_actions["llm"].action
    assert action.isEnabled() and action.text() == "Cancel loading LLM"
    action.trigger()
    wait(lambda: app.core.lifecycle.instance(key) is None and not llama_children())
    app.menu.rebuild()
    assert app.menu.profile_actions["llm"].kind == "load"


def test_rescan_picks_up_a_new_gguf_and_tells_the_problems(tree_app, wait, qtbot, lms_tree) -> None:
    app = tree_app()
    app.show_models()
    window = app.models_window
    assert len(table_rows(window)) == 5
    new = lms_tree / "newpub" / "delta-3b-GGUF" / "delta-3b-Q4_K_M.gguf"
    new.parent.mkdir(parents=True)
    write_tiny_model(new, seed=42, name="delta-3b")
    (lms_tree / "broken.gguf").write_bytes(b"GGUF but not really")

    qtbot.mouseClick(window.rescan_button, Qt.MouseButton.LeftButton)
    assert not window.rescan_button.isEnabled()
    wait(lambda: window.rescan_button.isEnabled())
    assert window.rescan_label.text() == "Found 4 models in the folders; 1 could not be read"
    assert window.scan_problems.isVisible() and "broken.gguf" in window.scan_problems.text()
    keys = [r["Key"] for r in table_rows(window)]
    assert len(keys) == 6 and "newpub/delta-3b" in keys
    app.menu.rebuild()
    assert "newpub/delta-3b" in app.menu.other_actions


def test_a_rows_settings_are_edited_there_and_the_row_is_marked(tree_app, wait, qtbot) -> None:
    app = tree_app()
    app.show_models()
    window = app.models_window
    gamma = next(r for r in table_rows(window) if r["Key"] == "gamma-loose")
    assert gamma["Name"] == "gamma-loose"  # no settings of its own: no mark

    qtbot.mouseClick(window.row_actions["gamma-loose"].settings, Qt.MouseButton.LeftButton)
    dlg = app.preset_dialogs["gamma-loose"]
    assert dlg.isVisible() and dlg.windowTitle() == "Settings of gamma-loose"
    dlg.own["ctx-size"].setChecked(True)
    dlg.editors["ctx-size"].set_text("1024")
    dlg.own["pinned"].setChecked(True)
    dlg.editors["pinned"].set_text("true")
    assert dlg.apply()
    assert app.core.paths.presets_file.read_text().endswith(
        "[gamma-loose]\nctx-size = 1024\npinned = true\n"
    )
    # the row is marked, its tooltip says what it sets
    row = next(r for r in window.model.rows if r.key == "gamma-loose")
    assert row.name == "\u2699 gamma-loose" and row.own_settings
    assert "Own settings (models.ini): ctx-size = 1024, pinned = true" in row.tip
    others = [r for r in window.model.rows if r.key != "gamma-loose"]
    assert not any(r.own_settings or r.name.startswith("\u2699") for r in others)

    # loaded from its row, it runs with them
    qtbot.mouseClick(window.row_actions["gamma-loose"].load, Qt.MouseButton.LeftButton)
    wait(lambda: table_rows(window)[0]["State"] == "ready")
    top = table_rows(window)[0]
    assert top["Key"] == "gamma-loose" and top["Context"] == "1,024"
    assert app.core.lifecycle.ready("gamma-loose").pinned
    # what the process runs with, in the row's tooltip
    row = next(r for r in window.model.rows if r.key == "gamma-loose")
    assert "Runs with: ctx-size = 1024, n-gpu-layers = -1" in row.tip

    # a change while it runs: saved, and the dialog says it applies at the next load
    dlg.editors["ctx-size"].set_text("2048")
    assert dlg.apply()
    assert "Context size: from the next load of the model." in dlg.message.text()
    assert "runs with the old settings" in dlg.message.text()
    wait(lambda: "Runs stale" in next(r for r in window.model.rows if r.key == "gamma-loose").tip)
    dlg.close()
    app.unload("gamma-loose")
    wait(lambda: app.core.lifecycle.instance("gamma-loose") is None)
