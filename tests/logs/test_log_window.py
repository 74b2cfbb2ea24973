"""The log window on a qasync loop: tabs, followers, runs, and a real llama-server's log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from app.core.logs.app_logging import setup_logging
from app.paths import AppPaths
from app.ui.log_window import APP_TAB, RUN_TAB, LogWindow, LogWindowController
from tests.logs.conftest import run
from tests.support.app import load_role
from tests.support.wait import until


def has_line(window: LogWindow, key, text: str) -> bool:
    pane = window.panes.get(key)
    return pane is not None and any(text in x for x in pane.view.shown_lines())


def followers_done(window: LogWindow) -> bool:
    return all(p.handle is None for p in window.panes.values())


async def close_and_drain(window: LogWindow) -> None:
    """Close the window, check every follower was told to stop, and wait until they end."""
    tasks = [p.handle.task for p in window.panes.values() if p.handle]
    window.close()
    assert followers_done(window)
    await until(lambda: all(t.done() for t in tasks))


def test_tails_a_real_llama_server_while_it_loads(
    qtbot, qloop, make_core, tiny_model: Path, port: int
) -> None:
    core = make_core(LLM_MODEL_GGUF=str(tiny_model), LLAMA_LLM_PORT=port)
    ctl = LogWindowController.for_settings(core, core.paths, core.settings)
    window = ctl.open()
    qtbot.addWidget(window)
    assert window.tab_titles() == ["App", "FamilyLog run"]

    async def scenario() -> None:
        try:
            load = asyncio.ensure_future(load_role(core, "llm"))
            await until(lambda: port in window.panes)
            assert window.tab_titles()[-1] == f"LLM · {port}"
            await until(lambda: has_line(window, port, "llama_server: model loaded"))
            await until(lambda: has_line(window, port, f"listening on http://127.0.0.1:{port}"))
            await load
        finally:
            await core.stop()
        await until(lambda: has_line(window, port, "exited with code"))
        assert port in window.panes, "the tab stays after the server stops"
        assert len([p for p in window.panes.values() if p.handle]) == 2
        await close_and_drain(window)

    run(qloop, scenario())


def test_app_log_tab_follows_the_apps_own_log(qtbot, qloop, make_core, paths: AppPaths) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    setup_logging(paths.app_log_file, console=False)
    window = LogWindow(make_core(), paths, 500)
    qtbot.addWidget(window)

    async def scenario() -> None:
        logging.getLogger("app.core.servers.manager").error("Port 1: starting -> failed: boom")
        await until(lambda: has_line(window, APP_TAB, "starting -> failed: boom"))
        assert "ERROR" in window.panes[APP_TAB].view.shown_lines()[-1]
        await close_and_drain(window)

    try:
        run(qloop, scenario())
    finally:
        for h in root.handlers[:]:
            if h not in before:
                root.removeHandler(h)
                h.close()


def test_run_tab_follows_a_run_log_and_takes_lines(qtbot, qloop, make_core, paths) -> None:
    ctl = LogWindowController(make_core(), paths, 1000)
    run_log = paths.runs_dir / "run-1.log"
    run_log.parent.mkdir(parents=True)
    run_log.write_text("step 1: transcribing\n")
    ctl.show_run_log(run_log, "FamilyLog run 10:00")  # before the window exists
    window = ctl.open(RUN_TAB)
    qtbot.addWidget(window)
    assert window.tabs.currentWidget() is window.panes[RUN_TAB]
    assert window.tab_titles()[1] == "FamilyLog run 10:00"

    async def scenario() -> None:
        await until(lambda: has_line(window, RUN_TAB, "step 1"))
        with open(run_log, "a") as f:
            f.write("step 2: summarising\n")
        await until(lambda: has_line(window, RUN_TAB, "step 2"))
        ctl.append_run_lines(["run finished: exit code 0"])
        await until(lambda: has_line(window, RUN_TAB, "exit code 0"))
        second = paths.runs_dir / "run-2.log"
        second.write_text("second run\n")
        ctl.show_run_log(second, "FamilyLog run 11:00")
        await until(lambda: has_line(window, RUN_TAB, "second run"))
        assert not has_line(window, RUN_TAB, "step 1"), "a new run starts a clean view"
        await close_and_drain(window)

    run(qloop, scenario())
    assert run_log.read_text() == "step 1: transcribing\nstep 2: summarising\n", "files untouched"
    ctl.close()
    assert ctl.window is None


def test_controller_raises_one_window_and_makes_a_new_one_after_close(
    qtbot, qloop, make_core, paths
) -> None:
    old = paths.server_log(8123)
    old.write_text("0.00.001.000 E srv  load_model: failed to load model\n")
    ctl = LogWindowController(make_core(), paths, 1000)
    w1 = ctl.open()
    qtbot.addWidget(w1)
    assert ctl.open() is w1
    assert 8123 in w1.panes, "a server log from an earlier run gets a tab"

    async def scenario() -> None:
        await until(lambda: has_line(w1, 8123, "failed to load model"))
        task = w1.panes[8123].handle.task
        w1.tabs.tabCloseRequested.emit(w1.tabs.indexOf(w1.panes[8123]))
        assert 8123 not in w1.panes
        await until(task.done)  # closing a tab stops its follower
        w1.tabs.tabCloseRequested.emit(0)  # the app tab cannot be closed
        assert APP_TAB in w1.panes
        await close_and_drain(w1)
        w2 = ctl.open()
        qtbot.addWidget(w2)
        assert w2 is not w1 and w2.isVisible()
        await close_and_drain(w2)

    run(qloop, scenario())
    ctl.close()
