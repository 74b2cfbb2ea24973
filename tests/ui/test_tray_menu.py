"""The tray menu's actions against a real core and the real tiny-model llama-server."""

from __future__ import annotations

from app.core.notices import Level
from app.core.servers.states import ServerState
from app.core.summary import TrayState


def table_rows(window) -> list[dict[str, str]]:
    t = window.table
    heads = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    return [
        {heads[c]: t.item(r, c).text() for c in range(t.columnCount())} for r in range(t.rowCount())
    ]


def test_load_from_menu_shows_the_row_with_its_pid_then_unload(
    make_app, arun, wait, tiny_model, port
) -> None:
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    app.show_models()
    window = app.models_window
    menu = app.menu
    menu.rebuild()
    llm = menu.profile_actions["llm"]
    assert llm.load.isEnabled() and not llm.unload.isEnabled()
    assert "not loaded" in llm.header.text()

    llm.load.trigger()
    wait(lambda: app.core.manager.status(port).state is ServerState.READY)
    status = app.core.manager.status(port)
    wait(lambda: any(r["PID"] == str(status.pid) for r in table_rows(window)))
    row = next(r for r in table_rows(window) if r["Port"] == str(port))
    assert row == row | {
        "Profile": "LLM",
        "Model file": tiny_model.name,
        "PID": str(status.pid),
        "State": "ready",
        "Context": "512",
    }
    assert app.tray.state is TrayState.READY
    assert f"LLM ready on :{port}" in app.tray.icon.toolTip()

    menu.rebuild()
    llm = menu.profile_actions["llm"]
    assert f"ready on :{port}" in llm.header.text()
    assert not llm.load.isEnabled() and llm.unload.isEnabled()
    assert menu.act_unload_all.isEnabled()

    llm.unload.trigger()
    wait(lambda: app.core.manager.status(port).state is ServerState.STOPPED)
    wait(lambda: table_rows(window) == [])
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
    assert title == "Loading LLM failed"
    assert "exited with code" in text
    assert f"Log: {app.core.log_path(port)}" in text
    assert app.tray.state is TrayState.ERROR
    # the window shows the latest problem too (the fallback when there is no tray)
    app.show_models()
    app.core.notices.emit(notice)
    assert "Loading LLM failed" in app.models_window.problem.text()
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
    assert not llm.load.isEnabled() and not llm.switch.isEnabled()
    assert llm.settings is not None
    vision = app.menu.profile_actions["vision"]
    assert (
        "No model file set" in vision.header.text() and "VISION_MODEL_GGUF" in vision.header.text()
    )
    llm.settings.trigger()
    assert app.settings_dialog is not None and app.settings_dialog.isVisible()


def test_switch_single_port_between_profiles(
    make_app, arun, wait, tiny_model, tiny_model_b
) -> None:
    app = make_app(LLM_MODEL_GGUF=str(tiny_model), VISION_MODEL_GGUF=str(tiny_model_b))
    single = app.core.settings.LLAMA_PORT
    manager = app.core.manager
    app.menu.rebuild()
    app.menu.profile_actions["llm"].switch.trigger()
    wait(lambda: manager.status(single).state is ServerState.READY)
    assert manager.status(single).model_path == str(tiny_model)
    first_pid = manager.status(single).pid

    app.menu.rebuild()
    assert not app.menu.profile_actions["llm"].switch.isEnabled()  # already there
    app.menu.profile_actions["vision"].switch.trigger()
    wait(
        lambda: (
            manager.status(single).state is ServerState.READY
            and manager.status(single).model_path == str(tiny_model_b)
        )
    )
    assert manager.status(single).pid != first_pid
    app.menu.rebuild()
    assert app.menu.act_unload_all.text() == "Unload all"
    app.menu.act_unload_all.trigger()
    wait(lambda: manager.get_loaded_models() == {})


def test_busy_port_disables_actions(make_app, arun, wait, tiny_model, port) -> None:
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    task = app.load("llm")
    wait(lambda: app.core.manager.is_busy(port))
    app.menu.rebuild()
    llm = app.menu.profile_actions["llm"]
    assert not llm.load.isEnabled() and not llm.unload.isEnabled()
    assert app.load("llm") is None  # not queued twice
    arun(task)
    app.menu.rebuild()
    assert app.menu.profile_actions["llm"].unload.isEnabled()


def test_show_logs_and_start_at_login_from_the_menu(make_app, tmp_path) -> None:
    import os
    from pathlib import Path

    app = make_app()
    menu = app.menu
    menu.rebuild()
    menu.act_logs.trigger()
    assert app.logs.window is not None and app.logs.window.isVisible()
    assert "App" in app.logs.window.tab_titles()

    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "familylog-tray.desktop"
    assert menu.act_start_at_login.isCheckable() and not menu.act_start_at_login.isChecked()
    menu.act_start_at_login.trigger()
    assert entry.is_file() and "--autostart" in entry.read_text()
    menu.rebuild()
    assert menu.act_start_at_login.isChecked()
    entry.unlink()  # removed by hand: the menu reads the truth from disk
    menu.rebuild()
    assert not menu.act_start_at_login.isChecked()


def test_quit_stops_every_server(make_app, arun, wait, tiny_model, port) -> None:
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    arun(app.load("llm"))
    pid = app.core.manager.status(port).pid
    assert pid
    app.menu.rebuild()
    app.menu.act_quit.trigger()
    assert app._quit.is_set()
    arun(app.shutdown())
    assert app.core.manager.get_loaded_models() == {}


def test_run_in_progress_icon_and_tooltip(make_app) -> None:
    app = make_app()
    assert app.tray.state is TrayState.IDLE
    assert "No model loaded" in app.tray.icon.toolTip()
    app.set_run_in_progress(True)
    assert app.tray.state is TrayState.RUN
    assert "FamilyLog run in progress" in app.tray.icon.toolTip()
    app.set_run_in_progress(False)
    assert app.tray.state is TrayState.IDLE
