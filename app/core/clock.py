"""The one clock seam: wall time, monotonic time, sleeping and timeouts, so a test can move
time by hand and check the real delays (the hung check's 30 s, the restart back-off, a
run's 10 s before SIGKILL, the schedule) without waiting for them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """Local wall time, naive."""
        ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        """``aw``'s result, or ``TimeoutError`` after ``timeout`` seconds (it is cancelled)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        return await asyncio.wait_for(aw, timeout)
