"""The tray menu's actions against a real core and the real tiny-model llama-server."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.notices import Level
from app.core.servers.states import ServerState
from app.core.summary import TrayState


def table_rows(window, *, visible_only: bool = True) -> list[dict[str, str]]:
    """The models window's rows as shown: header text → cell text, top to bottom."""
    model, table = window.table.model(), window.table
    heads = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    return [
        {heads[c]: model.data(model.index(r, c)) or "" for c in range(model.columnCount())}
        for r in range(model.rowCount())
        if not (visible_only and table.isRowHidden(r))
    ]


def menu_texts(menu) -> list[str]:
    """Every text in the menu, its submenus included."""
    out = []
    for act in menu.actions():
        out.append(act.text())
        if act.menu() is not None:
            out += menu_texts(act.menu())
    return out


def test_load_from_menu_shows_the_row_with_its_pid_then_unload(
    make_app, arun, wait, tiny_model, port
) -> None:
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    key = app.core.catalogue.role("llm").key
    app.show_models()
    window = app.models_window
    menu = app.menu
    menu.rebuild()
    llm = menu.profile_actions["llm"]
    assert llm.load is llm.action and llm.unload is None
    assert llm.load.isEnabled() and llm.load.text() == "Load LLM"
    assert "not loaded" in llm.header.text()
    assert menu.act_status.text() == "Nothing loaded"

    llm.load.trigger()
    wait(lambda: app.core.manager.status(port).state is ServerState.READY)
    status = app.core.manager.status(port)
    wait(lambda: table_rows(window)[0]["State"] == "ready")
    row = table_rows(window)[0]
    assert row == row | {
        "Name": "tiny-llama",
        "Key": key,
        "Role": "LLM",
        "Type": "LLM",
        "Context": "512",
        "Details": f"port {port} · PID {status.pid}",
    }
    assert app.tray.state is TrayState.READY
    tip = app.tray.icon.toolTip()
    assert "LLM ready" in tip and str(port) not in tip and "PID" not in tip

    menu.rebuild()
    llm = menu.profile_actions["llm"]
    assert llm.header.text() == "LLM: ready · tiny-llama"
    assert llm.load is None and llm.unload.isEnabled() and llm.unload.text() == "Unload LLM"
    assert menu.act_status.text().startswith("LLM ready")
    assert menu.act_unload_all.isEnabled()
    assert not [t for t in menu_texts(menu) if str(port) in t or "PID" in t]

    llm.unload.trigger()
    wait(lambda: app.core.manager.status(port).state is ServerState.STOPPED)
    wait(lambda: table_rows(window)[0]["State"] == "not loaded")
    assert table_rows(window)[0]["Details"] == ""
    assert app.tray.state is TrayState.IDLE


def test_failed_load_shows_a_notification_with_the_log(
    make_app, arun, wait, corrupt_model, port
) -> None:
    app = make_app(LLM_MODEL_GGUF=str(corrupt_model))
    app.menu.rebuild()
    shown: list[tuple[str, str]] = []
    app.notifier.shown.connect(lambda title, text: shown.append((title, text)))
    app.menu.profile_actions["llm"].load.trigger()
    wait(lambda: bool(shown))
    title, text = shown[-1]
    notice = app.notifier.history[-1]
    assert notice.level is Level.ERROR
    key = app.core.catalogue.role("llm").key
    assert title == f"Loading LLM ({key}) failed"
    assert "exited with code" in text
    assert f"Log: {app.core.log_path(port)}" in text
    assert app.tray.state is TrayState.ERROR
    # the window shows the latest problem too (the fallback when there is no tray)
    app.show_models()
    app.core.notices.emit(notice)
    assert f"Loading LLM ({key}) failed" in app.models_window.problem.text()
    # "Unload all" clears the error
    app.menu.rebuild()
    assert app.menu.act_unload_all.isEnabled() is False  # nothing alive
    app.unload_all()
    wait(lambda: app.tray.state is TrayState.IDLE)


def test_missing_model_file_is_explained_and_offers_settings(
    make_app, arun, wait, tmp_path
) -> None:
    missing = tmp_path / "gone.gguf"
    app = make_app(LLM_MODEL_GGUF=str(missing))
    app.menu.rebuild()
    llm = app.menu.profile_actions["llm"]
    assert f"Model file not found: {missing}" in llm.header.text()
    assert not llm.load.isEnabled() and llm.unload is None
    assert not llm.load.isVisible()  # nothing to do but set it up
    assert llm.settings is not None
    vision = app.menu.profile_actions["vision"]
    assert (
        "No model file set" in vision.header.text() and "VISION_MODEL_GGUF" in vision.header.text()
    )
    llm.settings.trigger()
    assert app.settings_dialog is not None and app.settings_dialog.isVisible()


def test_switch_mode_load_swaps_the_models_on_the_single_port(
    make_app, arun, wait, tiny_model, tiny_model_b, port, port2
) -> None:
    """RUN_MODE=switch: "Load LLM" puts the LLM on LLAMA_PORT; "Load Vision" then puts
    the vision model there in a new process and the LLM is unloaded (its Load is offered
    again); "Unload all" empties the port."""
    app = make_app(
        LLM_MODEL_GGUF=str(tiny_model), VISION_MODEL_GGUF=str(tiny_model_b), RUN_MODE="switch"
    )
    single = app.core.settings.LLAMA_PORT
    manager = app.core.manager
    app.menu.rebuild()
    app.menu.profile_actions["llm"].load.trigger()
    wait(lambda: manager.status(single).state is ServerState.READY)
    assert manager.status(single).model_path == str(tiny_model)
    first_pid = manager.status(single).pid

    app.menu.rebuild()
    llm = app.menu.profile_actions["llm"]
    assert llm.load is None and llm.unload.isEnabled()  # already there
    assert "ready" in llm.header.text() and str(single) not in llm.header.text()
    app.menu.profile_actions["vision"].load.trigger()
    wait(
        lambda: (
            manager.status(single).state is ServerState.READY
            and manager.status(single).model_path == str(tiny_model_b)
        )
    )
    assert manager.status(single).pid != first_pid
    assert set(manager.get_loaded_models()) == {single}  # nothing on the roles' own ports
    assert port not in manager.statuses() or not manager.status(port).state.alive
    assert port2 not in manager.statuses() or not manager.status(port2).state.alive
    app.menu.rebuild()
    llm = app.menu.profile_actions["llm"]
    assert llm.load.isEnabled() and llm.unload is None
    assert "not loaded" in llm.header.text()
    assert app.menu.act_unload_all.text() == "Unload all"
    app.menu.act_unload_all.trigger()
    wait(lambda: manager.get_loaded_models() == {})


def test_busy_port_disables_actions(make_app, arun, wait, tiny_model, port) -> None:
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    key = app.core.catalogue.role("llm").key
    task = app.load(key)
    wait(lambda: app.core.manager.is_busy(port))
    app.menu.rebuild()
    llm = app.menu.profile_actions["llm"]
    # while it loads there is no Load to press twice: Cancel (or a greyed action)
    assert llm.load is None or not llm.load.isEnabled()
    assert llm.kind == "cancel" or not llm.action.isEnabled()
    again = app.load(key)  # asked twice while loading: one load, one process
    first, second = arun(task), arun(again)
    assert first.pid == second.pid and first.port == second.port == port
    assert len(app.core.lifecycle.snapshot()) == 1
    app.menu.rebuild()
    assert app.menu.profile_actions["llm"].unload.isEnabled()


def _api_load(arun, app, key: str) -> dict:
    """POST /api/v1/models/load, as an LM Studio client does."""
    from app.core.servers.health import loopback_client

    async def post() -> dict:
        async with loopback_client(timeout=60) as client:
            r = await client.post(f"{app.core.api.url}/api/v1/models/load", json={"model": key})
        assert r.status_code == 200, r.text
        return r.json()

    return arun(post())


def _one_llama_server(app, port: int) -> int:
    """The one llama-server process there is (a child of this test), on ``port``; its PID."""
    from tests.conftest import llama_children

    (proc,) = llama_children()
    assert app.core.manager.status(port).pid == proc.pid
    assert [i.pid for i in app.core.lifecycle.snapshot()] == [proc.pid]
    return proc.pid


def test_api_load_then_tray_load_is_one_process(make_app, arun, wait, tiny_model, port) -> None:
    """A client loads the LLM through the API while the tray menu is open (its "Load LLM"
    still offered); the tray's Load then finds it: the same process, nothing started."""
    app = make_app(LLM_MODEL_GGUF=str(tiny_model), API_ENABLED=True, API_PORT=0)
    key = app.core.catalogue.role("llm").key
    app.menu.rebuild()
    stale = app.menu.profile_actions["llm"].load
    assert stale.isEnabled()
    answer = _api_load(arun, app, key)
    assert answer["status"] == "loaded" and answer["instance_id"] == key
    pid = _one_llama_server(app, port)

    starts: list = []
    app.core.manager.subscribe(
        lambda e: starts.append(e) if e.new is ServerState.STARTING else None
    )
    stale.trigger()  # the Load the open menu still offered
    inst = arun(app.load(key))  # and once more, awaited: what the action runs
    assert (inst.port, inst.pid) == (port, pid)
    assert starts == []
    assert _one_llama_server(app, port) == pid
    app.menu.rebuild()
    llm = app.menu.profile_actions["llm"]
    assert llm.load is None and llm.unload.isEnabled()
    assert llm.header.text() == "LLM: ready · tiny-llama"


def test_tray_load_then_api_load_is_one_process(make_app, arun, wait, tiny_model, port) -> None:
    """The tray loads the LLM; a client then loads it by its key through the API: the API
    answers with the running instance (no load time), the same process."""
    app = make_app(LLM_MODEL_GGUF=str(tiny_model), API_ENABLED=True, API_PORT=0)
    key = app.core.catalogue.role("llm").key
    app.menu.rebuild()
    app.menu.profile_actions["llm"].load.trigger()
    wait(lambda: app.core.manager.status(port).state is ServerState.READY)
    pid = _one_llama_server(app, port)

    answer = _api_load(arun, app, key)
    assert answer["status"] == "loaded" and answer["instance_id"] == key
    assert answer["load_time_seconds"] == 0
    assert _one_llama_server(app, port) == pid
    assert app.core.manager.status(port).state is ServerState.READY
