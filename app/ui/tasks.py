"""Run core coroutines from Qt slots on the qasync loop, keeping a reference to each task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

_running: set[asyncio.Task[Any]] = set()  # a reference to each task until it is done


def spawn(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
    """Start ``coro``; its failure is logged (the core has already told the user)."""
    task = asyncio.ensure_future(coro)
    _running.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        _running.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            log.info("%s failed: %s", what, exc)

    task.add_done_callback(done)
    return task
