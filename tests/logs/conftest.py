"""Fixtures for the log window: a qasync loop on pytest-qt's QApplication, a real AppCore."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path

import pytest
import qasync

from app.config import load_settings
from app.core.app_core import AppCore
from app.paths import AppPaths
from tests.support import app as support
from tests.support.qt import collect_qt_garbage


def pytest_configure(config: pytest.Config) -> None:
    # pytest-qt's qapp is session-scoped, so it is created before the autouse app_home
    # fixture sets QT_QPA_PLATFORM for each test: set it before any test runs.
    os.environ.setdefault("QT_QPA_PLATFORM", os.environ.get("FLT_TEST_QPA", "offscreen"))


@pytest.fixture
def qloop(qapp):
    """A qasync loop for the test; any exception raised inside the loop fails the test."""
    quit_on_close = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)  # as in the tray app: closing a window is not quit
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield loop
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        qapp.setQuitOnLastWindowClosed(quit_on_close)
        collect_qt_garbage(qapp, loop)
    assert not errors, f"exceptions inside the event loop: {errors}"


def run(loop: asyncio.AbstractEventLoop, scenario: Awaitable[None]) -> None:
    """Run a whole test scenario in ONE ``run_until_complete``.

    qasync 0.28's ``run_until_complete`` processes Qt events once more after it has unset
    the running loop, so a task step that lands there fails with "no running event loop";
    a test that calls it many times would be flaky. The scenario must end its tasks.
    """
    loop.run_until_complete(scenario)


@pytest.fixture
def paths(app_home: Path) -> AppPaths:
    return AppPaths.resolve().ensure()


@pytest.fixture
def make_core(paths: AppPaths, llama_server_bin: str):
    """``make_core(**settings)``: a core with no services, built as the app builds it."""

    def make(**overrides) -> AppCore:
        settings = load_settings(
            paths, LLAMA_SERVER_PATH=llama_server_bin, LLAMA_CTX_SIZE=512, **overrides
        )
        return support.make_core(settings, None, paths=paths)

    return make
