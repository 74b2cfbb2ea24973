"""Where a path's time goes: ``Steps`` marks the end of each step with ``perf_counter`` and
says the milliseconds of each, for a debug line (a switch: stop, port, spawn, ready)."""

from __future__ import annotations

import time


class Steps:
    """``steps.mark("stop")`` ends the step named ``stop`` (the time since the last mark);
    ``str(steps)`` is ``"stop 3.1 ms, spawn 0.4 ms, ... (total 30.2 ms)"``."""

    __slots__ = ("_start", "_last", "marks")

    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self.marks: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks.append((name, now - self._last))
        self._last = now

    @property
    def total(self) -> float:
        """Seconds from the start to the last mark."""
        return self._last - self._start

    def __str__(self) -> str:
        parts = ", ".join(f"{name} {s * 1000:.1f} ms" for name, s in self.marks)
        return f"{parts} (total {self.total * 1000:.1f} ms)"
