"""A clock that moves only when the test says (``app.core.clock.Clock``), so the app's real
delays (the hung check's 30 s, the restart back-off, a run's 10 s before SIGKILL) are
checked at their real values without waiting for them.

``advance(s)`` moves time and wakes every ``sleep`` and times out every ``wait_for`` whose
deadline has come; ``deadlines()`` shows what waits and until when, so a test waits (through
``tests.support.wait.until``) for the app to have started the wait it expects before it
moves time past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class Waiter:
    deadline: float
    seconds: float  # what the code asked for
    kind: str  # "sleep" or "timeout"
    future: asyncio.Future = field(repr=False)


class ManualClock:
    def __init__(self, wall: dt.datetime | None = None, mono: float = 1000.0) -> None:
        self.wall = wall or dt.datetime(2026, 1, 5, 12, 0, 0)
        self.mono = mono
        self.waiters: list[Waiter] = []
        self.asked: list[tuple[str, float]] = []  # every (kind, seconds) asked, in order

    # ── the Clock protocol ────────────────────────────────────────────────────
    def now(self) -> dt.datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        await self._wait(seconds, "sleep")

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self._wait(timeout, "timeout"))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TimeoutError(f"no answer within {timeout:g} s (test clock)")
        finally:
            for t in (task, timer):
                if not t.done():
                    t.cancel()

    # ── for the test ──────────────────────────────────────────────────────────
    def advance(self, seconds: float) -> None:
        """Move time on; wake what was due by then (its code runs when the loop next does)."""
        self.mono += seconds
        self.wall += dt.timedelta(seconds=seconds)
        for w in list(self.waiters):
            if w.deadline <= self.mono + 1e-9 and not w.future.done():
                w.future.set_result(None)

    def deadlines(self, kind: str | None = None) -> list[float]:
        """When each pending wait ends (``kind``: only sleeps or only timeouts)."""
        return sorted(
            w.deadline
            for w in self.waiters
            if not w.future.done() and (kind is None or w.kind == kind)
        )

    def waits_until(self, t: float, kind: str | None = None) -> bool:
        """Something (of ``kind``) waits until exactly ``t``."""
        return any(abs(d - t) < 1e-6 for d in self.deadlines(kind))

    async def _wait(self, seconds: float, kind: str) -> None:
        w = Waiter(self.mono + seconds, seconds, kind, asyncio.get_running_loop().create_future())
        self.asked.append((kind, seconds))
        self.waiters.append(w)
        if seconds <= 0:
            w.future.set_result(None)
        try:
            await w.future
        finally:
            self.waiters.remove(w)
