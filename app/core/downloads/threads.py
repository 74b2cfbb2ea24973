"""Blocking calls (the hub, the bytes, a checksum) in daemon threads of their own, as futures
of the running loop: a quit never waits for a stalled read, and the loop never blocks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """``fn(*args)`` in a daemon thread of its own (a quit never waits for a stalled read);
    its result as a future of the running loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def run() -> None:
        try:
            result = (True, fn(*args))
        except BaseException as e:
            result = (False, e)
        try:
            loop.call_soon_threadsafe(settle, *result)
        except RuntimeError:  # the loop is closed: the app quit meanwhile
            pass

    threading.Thread(target=run, name=f"hub-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return fut
