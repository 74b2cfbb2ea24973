"""Fixtures for the Qt tests: a qasync loop on pytest-qt's qapp, and a real TrayApp."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import qasync

from app.config import load_settings
from app.core.settings.settings_file import update_settings_file
from app.paths import AppPaths
from tests.conftest import free_port
from tests.support.app import AS_APP, make_core
from tests.support.qt import collect_qt_garbage

T = TypeVar("T")


def pytest_configure(config) -> None:
    # pytest-qt's qapp is session-scoped, so it exists before the per-test fixtures run.
    os.environ["QT_QPA_PLATFORM"] = os.environ.get("FLT_TEST_QPA", "offscreen")


@pytest.fixture
def qloop(qapp):
    """A qasync loop on qtbot's qapp, running for the whole test: tasks run whenever Qt
    processes events (``qtbot.waitUntil``, pytest-qt's own event processing). Exceptions
    inside the loop fail the test at teardown."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    asyncio.set_event_loop(loop)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    deadline = time.monotonic() + 10
    while any(not t.done() for t in pending) and time.monotonic() < deadline:
        qapp.processEvents()
    loop._QEventLoop__is_running = False  # stop() would call app.exit(); not wanted here
    loop._after_run_forever()  # already_running loops skip this until aboutToQuit
    asyncio.events._set_running_loop(None)
    loop.close()
    asyncio.set_event_loop(None)
    collect_qt_garbage(qapp, loop)
    assert not errors, f"exceptions inside the event loop: {errors}"


@pytest.fixture
def arun(qloop, qtbot):
    """``arun(coro)``: run a coroutine on the loop until it is done; its result."""

    def run(aw: Awaitable[T], timeout: float = 60.0) -> T:
        fut = asyncio.ensure_future(aw)
        qtbot.waitUntil(fut.done, timeout=int(timeout * 1000))
        return fut.result()

    return run


@pytest.fixture
def wait(qloop, qtbot):
    """``wait(predicate)``: let the loop run until ``predicate()`` holds (60 s deadline)."""

    def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        qtbot.waitUntil(predicate, timeout=int(timeout * 1000))

    return until


@pytest.fixture
def make_app(arun, llama_server_bin, port, port2):
    """Build a started TrayApp over a real core; stopped (all servers) at teardown."""
    from app.ui.tray_app import TrayApp

    made = []

    def make(**overrides):
        paths = AppPaths.resolve().ensure()
        values = {
            "LLAMA_SERVER_PATH": llama_server_bin,
            "LLAMA_LLM_PORT": port,
            "LLAMA_VISION_PORT": port2,
            "LLAMA_PORT": free_port(),
            "LLAMA_CTX_SIZE": 512,
            "API_ENABLED": False,
        }
        values.update(overrides)
        # through the settings file, as a user would, so reloading it gives the same
        update_settings_file(paths.settings_file, {k: str(v) for k, v in values.items()})
        settings = load_settings(paths)
        core = make_core(settings, **AS_APP, paths=paths)
        app = TrayApp(core, paths)
        arun(app.start(show_tray=False, load_at_start=False))
        made.append(app)
        return app

    yield make
    for app in made:
        arun(app.shutdown())
