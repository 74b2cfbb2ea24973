"""Fixtures for the log window: a qasync loop on pytest-qt's QApplication, a real AppCore."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import qasync

from app.config import load_settings
from app.core.app_core import AppCore
from app.paths import AppPaths


def pytest_configure(config: pytest.Config) -> None:
    # pytest-qt's qapp is session-scoped, so it is created before the autouse app_home
    # fixture sets QT_QPA_PLATFORM for each test: set it before any test runs.
    os.environ.setdefault("QT_QPA_PLATFORM", os.environ.get("FLT_TEST_QPA", "offscreen"))


@pytest.fixture
def qloop(qapp):
    """A qasync loop for the test; any exception raised inside the loop fails the test."""
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
    assert not errors, f"exceptions inside the event loop: {errors}"


def run_until(
    loop: asyncio.AbstractEventLoop, predicate: Callable[[], bool], timeout: float = 20.0
) -> None:
    """Run the qasync loop (and so Qt) until ``predicate()`` holds; fail after ``timeout``."""

    async def poll() -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {timeout:g} s: {predicate}")
            await asyncio.sleep(0.01)

    loop.run_until_complete(poll())


@pytest.fixture
def paths(app_home: Path) -> AppPaths:
    return AppPaths.resolve().ensure()


@pytest.fixture
def make_core(paths: AppPaths, llama_server_bin: str):
    def make(**overrides) -> AppCore:
        settings = load_settings(
            paths, LLAMA_SERVER_PATH=llama_server_bin, LLAMA_CTX_SIZE=512, **overrides
        )
        return AppCore(settings, paths)

    return make
