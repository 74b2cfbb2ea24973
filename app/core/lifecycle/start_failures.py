"""Models whose server crashed while starting: not started again until a back-off has
passed (2 s, 4 s, 8 s … at most 5 min), every request meanwhile answered at once with the
reason; and, while that crash is the file's last word, never started in place of a running
model (nothing is unloaded to make room for a file just seen to crash). A changed file (a
new download, a fixed copy) or another set-up (its settings, its preset, a client's load
config) is tried again at once; a start that succeeds forgets it all."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.core.models.entry import ModelEntry
from app.core.servers.states import FileId, file_identity

FIRST_BACKOFF = 2.0
MAX_BACKOFF = 300.0

File = tuple[str, str | None]


@dataclass(frozen=True)
class Crash:
    file_id: FileId | None  # the file that crashed; another file at the path is a new one
    setup: tuple  # what it was started with (``launch_key``); another set-up is a new try
    count: int  # crashes in a row
    until: float  # clock time before which it is not started again
    reason: str  # why, as the failed load said it


class StartFailures:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_file: dict[File, Crash] = {}

    def _crash(self, entry: ModelEntry, setup: tuple | None = None) -> Crash | None:
        """The crash that is the last word on ``entry``'s file; with ``setup``: only if it
        crashed with that set-up."""
        crash = self._by_file.get(entry.file)
        if crash is not None and crash.file_id != file_identity(entry.path):
            del self._by_file[entry.file]  # the file changed: a new try
            return None
        if crash is not None and setup is not None and crash.setup != setup:
            return None
        return crash

    def blocked(self, entry: ModelEntry, setup: tuple | None = None) -> str | None:
        """Why ``entry`` (started with ``setup``; None: any) is not started now (its
        back-off runs), else None."""
        crash = self._crash(entry, setup)
        if crash is None:
            return None
        left = crash.until - self._clock()
        if left <= 0:
            return None
        times = "once" if crash.count == 1 else f"{crash.count} times in a row"
        return (
            f"{entry.key} crashed while starting ({times}); it is tried again in {left:.0f} s, "
            f"or at once when its file changes. Last time: {crash.reason}"
        )

    def recent(self, entry: ModelEntry, setup: tuple) -> str | None:
        """The crash that is this file's last word with ``setup``, if any (back-off over
        or not)."""
        crash = self._crash(entry, setup)
        return crash.reason if crash is not None else None

    def crashed(self, entry: ModelEntry, setup: tuple, reason: str) -> float:
        """Count a crash at start with ``setup``; the back-off in seconds."""
        before = self._crash(entry, setup)
        count = (before.count if before else 0) + 1
        backoff = min(FIRST_BACKOFF * 2 ** (count - 1), MAX_BACKOFF)
        self._by_file[entry.file] = Crash(
            file_identity(entry.path), setup, count, self._clock() + backoff, reason
        )
        return backoff

    def started(self, entry: ModelEntry) -> None:
        self._by_file.pop(entry.file, None)
