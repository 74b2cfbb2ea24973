"""The proxy's speed meter: reads llama-server's ``timings`` from an answer as it passes.

A non-streamed answer carries them in its body; a streamed one in its last ``data:`` events.
Only a bounded tail of the stream is kept (bytes references, no copies of earlier chunks),
and it is read after the last chunk has been written, so no chunk is held back or delayed.
The figures go to ``app.core.models.stats.SpeedStats`` under the model's key.
"""

from __future__ import annotations

import json
import time
from typing import Any

from app.core.models.stats import Sample, SpeedStats

TAIL_BYTES = 8192  # the final events (finish, usage with timings) are well under this
_KEY = b'"timings"'


def find_timings(data: bytes) -> dict[str, Any] | None:
    """The last ``"timings": {...}`` object in ``data`` (a body or a stream's tail)."""
    i = data.rfind(_KEY)
    if i < 0:
        return None
    start = data.find(b"{", i + len(_KEY))
    end = data.find(b"}", start)  # the timings object holds numbers only: no nesting
    if start < 0 or end < 0:
        return None
    try:
        obj = json.loads(data[start : end + 1])
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


class Meter:
    """One request's meter: ``first_byte`` when the answer starts, ``chunk`` for each
    streamed chunk (keeps the tail), then ``body`` or ``done``."""

    __slots__ = ("_stats", "_key", "_t0", "_first", "_tail", "_tail_len")

    def __init__(self, stats: SpeedStats | None, key: str | None) -> None:
        self._stats = stats
        self._key = key
        self._t0 = time.perf_counter()
        self._first: float | None = None
        self._tail: list[bytes] = []
        self._tail_len = 0

    def first_byte(self) -> None:
        if self._first is None:
            self._first = (time.perf_counter() - self._t0) * 1000

    def chunk(self, data: bytes) -> None:
        if self._first is None:
            self._first = (time.perf_counter() - self._t0) * 1000
        self._tail.append(data)
        self._tail_len += len(data)
        while self._tail_len - len(self._tail[0]) >= TAIL_BYTES:
            self._tail_len -= len(self._tail.pop(0))

    def body(self, data: bytes) -> None:
        self.first_byte()
        self._record(data)

    def done(self) -> None:
        self._record(b"".join(self._tail))
        self._tail = []

    def _record(self, data: bytes) -> None:
        if self._stats is None or self._key is None:
            return
        timings = find_timings(data)
        sample = Sample.from_timings(timings, self._first) if timings is not None else None
        self._stats.record(self._key, sample)
