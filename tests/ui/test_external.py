"""A program the app did not start holds the LLM port: the tray menu and the models
window show it as "external (PID n)", and the app leaves it running."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support.app import alive
from tests.ui.test_tray_menu import table_rows


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def foreign_on_port(port, wait):
    """A small Python HTTP server on the LLM port: not llama-server, not the app's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait(lambda: _listening(port))
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_foreign_server_on_the_llm_port_is_shown_as_external(
    make_app, foreign_on_port, wait, tiny_model, port
) -> None:
    pid = foreign_on_port.pid
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    assert app.core.external[port].pid == pid

    menu = app.menu
    menu.rebuild()
    texts = [a.text() for a in menu.external_actions]
    assert len(texts) == 1 and f":{port}: external (PID {pid})" in texts[0], texts
    assert not menu.external_actions[0].isEnabled()  # information, not an action

    app.show_models()
    window = app.models_window
    wait(lambda: any(r["State"] == "external" for r in table_rows(window)))
    row = next(r for r in table_rows(window) if r["State"] == "external")
    assert row["Port"] == str(port) and row["PID"] == str(pid)
    assert alive(pid)  # shown, never stopped by the app


def test_a_foreign_server_that_starts_later_shows_up_when_the_menu_opens(
    make_app, wait, tiny_model, port
) -> None:
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    assert port not in app.core.external
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait(lambda: _listening(port))
        app.menu.aboutToShow.emit()  # what opening the menu does
        wait(lambda: port in app.core.external)
        assert app.core.external[port].pid == proc.pid
        app.menu.rebuild()
        assert any(f"external (PID {proc.pid})" in a.text() for a in app.menu.external_actions)
        assert any(n.title == f"Port {port} is taken" for n in app.core.notices.history)
        assert alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
