"""The one way the tests wait for something: ``until`` on the event loop, ``wait_until``
for subprocess and thread code that has no loop to share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def _describe(predicate: Callable[[], object]) -> str:
    code = getattr(predicate, "__code__", None)
    where = f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})" if code else ""
    return f"{getattr(predicate, '__qualname__', predicate)!s}{where}"


async def until(
    predicate: Callable[[], object], timeout: float = 30.0, *, interval: float = 0.01
) -> None:
    """Let the loop run until ``predicate()`` holds; AssertionError naming the predicate
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s: {_describe(predicate)}")
        await asyncio.sleep(interval)


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01
) -> bool:
    """Block (no loop runs) polling ``predicate`` until it holds or the deadline passes;
    whether it holds. For processes and threads, never inside a running event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
