"""Work that must run to its end once begun (a server's stop), even if its caller is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def finish(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end. A cancel of the caller meanwhile (a client that went away,
    Cancel pressed) waits for that end and is raised after it, so nothing is left half done:
    a server half stopped would leave its port "stopping" with no process behind it."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: the caller's cancel is what it gets
        raise asyncio.CancelledError
    return task.result()
