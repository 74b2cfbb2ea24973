"""A qasync loop on pytest-qt's QApplication, failing the test on any exception inside it."""

from __future__ import annotations

import asyncio
import os

import pytest
import qasync

from tests.support.qt import collect_qt_garbage

# pytest-qt's QApplication is session-wide and may be built before the function-scoped
# autouse fixture sets the platform: make sure it never tries a real display.
os.environ.setdefault("QT_QPA_PLATFORM", os.environ.get("FLT_TEST_QPA", "offscreen"))


@pytest.fixture
def qloop(qapp):
    qapp.setQuitOnLastWindowClosed(False)  # as in the tray app: closing a window is no quit
    loop = qasync.QEventLoop(qapp, already_running=False)
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        collect_qt_garbage(qapp, loop)
    assert not errors, f"exceptions inside the event loop: {errors}"
