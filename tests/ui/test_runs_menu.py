""" "Process now" from the tray menu, with the stand-in FamilyLog as the run."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from app.core.notices import Level
from app.core.summary import TrayState
from tests.support.clock import ManualClock

STANDIN = Path(__file__).resolve().parents[1] / "support" / "familylog_standin" / "run.py"


def standin(*args: str) -> str:
    return shlex.join([sys.executable, str(STANDIN), *args])


def test_process_now_from_the_menu(make_app, wait, tmp_path) -> None:
    app = make_app(FAMILYLOG_DIR=str(tmp_path), FAMILYLOG_COMMAND=standin("ok", "3"))
    app.menu.rebuild()
    assert app.menu.act_process_now.text() == "Process now"
    assert not app.menu.recent_runs_menu.isEnabled()  # no run yet
    app.menu.act_process_now.trigger()
    wait(lambda: bool(app.core.runs.recent_runs(1)) and not app.core.runs.status().busy)
    record = app.core.runs.recent_runs(1)[0]
    assert str(record.outcome) == "succeeded" and record.exit_code == 0
    assert "[standin]" in record.log_path.read_text()
    wait(lambda: any(n.title == "FamilyLog run finished" for n in app.notifier.history))
    assert app.tray.state is not TrayState.RUN

    # the run is in "Recent runs"; its entry opens the log in the log window's run tab
    app.menu.rebuild()
    assert app.menu.recent_runs_menu.isEnabled()
    [entry] = app.runs_ui.recent_actions
    assert "succeeded" in entry.text()
    entry.trigger()
    window = app.logs.window
    assert window is not None and window.isVisible()
    run_pane = window.panes["run"]
    wait(lambda: "[standin]" in run_pane.view.toPlainText())


def test_processing_shows_elapsed_time_and_cancel(make_app, wait, tmp_path) -> None:
    app = make_app(FAMILYLOG_DIR=str(tmp_path), FAMILYLOG_COMMAND=standin("hang"))
    app.menu.rebuild()
    app.menu.act_process_now.trigger()
    wait(lambda: app.core.runs.status().pid is not None)
    wait(lambda: app.tray.state is TrayState.RUN)
    assert "FamilyLog run" in app.tray.icon.toolTip()
    app.menu.rebuild()
    assert app.menu.act_process_now.text().startswith("Processing… (")
    assert not app.menu.act_process_now.isEnabled()
    # a second "Process now" (forwarded verb) only says a run is in progress
    reply = app.verbs["process-now"]()
    assert "already in progress" in reply
    app.menu.act_cancel_run.trigger()
    wait(lambda: not app.core.runs.status().busy and bool(app.core.runs.recent_runs(1)))
    assert str(app.core.runs.recent_runs(1)[0].outcome) == "cancelled"
    app.menu.rebuild()
    assert app.menu.act_process_now.text() == "Process now"
    assert app.menu.act_cancel_run is None
    errors = [n for n in app.core.notices.history if n.level is Level.ERROR]
    assert not [n for n in errors if "already" in n.text]


def test_the_tooltip_shows_the_run_s_elapsed_time_and_last_line(make_app, wait, tmp_path):
    """During a run the tooltip reads "FamilyLog run mm:ss: <its last line>": the time on
    a clock the test moves (3 min 12 s), the line the stand-in printed last, as the test
    read it from the run's output."""
    clock = ManualClock()
    app = make_app(clock, FAMILYLOG_DIR=str(tmp_path), FAMILYLOG_COMMAND=standin("hang"))
    printed: list[str] = []
    app.core.runs.subscribe_output(printed.extend)
    app.menu.rebuild()
    app.menu.act_process_now.trigger()
    wait(lambda: "[standin] hanging" in printed)  # its last line: it prints nothing more
    last = printed[-1]
    assert last == "[standin] hanging" and any("grandchild" in line for line in printed)
    clock.advance(3 * 60 + 12)
    wait(lambda: f"FamilyLog run 03:12: {last}" in app.tray.icon.toolTip())
    assert f"FamilyLog run 03:12: {last}" in app.tray.icon.toolTip().splitlines()  # a line
    app.menu.rebuild()
    assert app.menu.act_process_now.text() == "Processing… (03:12)"
    app.menu.act_cancel_run.trigger()
    wait(lambda: not app.core.runs.status().busy)
    wait(lambda: "FamilyLog run" not in app.tray.icon.toolTip(), timeout=10)
