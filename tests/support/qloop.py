"""The suite's one qasync loop, registered from ``tests/conftest.py``.

``qloop`` is a qasync loop on pytest-qt's ``qapp``, running for the whole test: tasks run
whenever Qt processes events (``qtbot.waitUntil``, pytest-qt's own event processing).
``arun(coro)`` runs a coroutine to its end that way; ``wait(predicate)`` is
``arun(until(predicate))`` for a test's own synchronous code.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from tests.support.qt import collect_qt_garbage
from tests.support.wait import until

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-qt's qapp is session-scoped, so it may be built before the autouse app_home
    # fixture sets QT_QPA_PLATFORM for a test: never let it try a real display.
    os.environ.setdefault("QT_QPA_PLATFORM", os.environ.get("FLT_TEST_QPA", "offscreen"))


@pytest.fixture
def qloop(qapp):
    """A qasync loop on qtbot's qapp for the test; exceptions inside it fail the test."""
    import qasync

    quit_on_close = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)  # as in the tray app: closing a window is no quit
    loop = qasync.QEventLoop(qapp, already_running=True)
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
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
        qapp.setQuitOnLastWindowClosed(quit_on_close)
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
def wait(arun):
    """``wait(predicate, timeout=60)``: ``until`` from a test's synchronous code."""

    def hold(predicate: Callable[[], object], timeout: float = 60.0) -> None:
        arun(until(predicate, timeout), timeout + 5)

    return hold
