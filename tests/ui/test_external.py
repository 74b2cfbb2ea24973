"""A program the app did not start holds the LLM port: the tray menu warns in words (no
port, no PID), the models window shows it as "external (PID n)", and the app leaves it
running."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from app.core.summary import EXTERNAL_WARNING
from tests.support.app import alive
from tests.ui.test_tray_menu import menu_texts


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
    assert texts == [EXTERNAL_WARNING]
    assert not [t for t in menu_texts(menu) if str(port) in t or "PID" in t]
    assert str(port) not in app.tray.icon.toolTip()

    menu.external_actions[0].trigger()  # it opens the models window, where the details are
    window = app.models_window
    assert window is not None and window.isVisible()
    assert window.external_label.isVisible()
    assert f":{port}: external (PID {pid})" in window.external_label.text()
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
        assert [a.text() for a in app.menu.external_actions] == [EXTERNAL_WARNING]
        app.show_models()
        assert f"external (PID {proc.pid})" in app.models_window.external_label.text()
        assert any(n.title == f"Port {port} is taken" for n in app.core.notices.history)
        assert alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
