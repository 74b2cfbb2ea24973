"""A run's output: split into lines, written to the run's log file, sent to subscribers.

Bytes are read in chunks and split on ``\\n`` with the unfinished tail kept for the next
chunk, so a line is never broken at a read boundary. Text that is not UTF-8 is replaced,
not fatal. A carriage return keeps only what follows it (what a terminal shows for a
progress bar). Lines go to subscribers in batches (a list per call): a line after a quiet
spell at once, then at most one batch every ``flush_interval`` seconds (or every
``max_batch`` lines), so a flood costs a few calls, not one per line, and memory stays
bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)

APP_PREFIX = "[familylog-tray] "


class LineSplitter:
    """Turns a stream of byte chunks into complete text lines."""

    def __init__(self, max_line: int = 64 * 1024) -> None:
        self._partial = b""
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[str]:
        data = self._partial + chunk if self._partial else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            if len(data) > self._max_line:  # a line with no end in sight: pass it on in parts
                self._partial = b""
                return [_clean(data.decode("utf-8", "replace"))]
            return []
        self._partial = data[cut + 1 :]
        text = data[:cut].decode("utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [_clean(line) for line in lines]
        return lines

    def close(self) -> list[str]:
        """The last line when the output did not end with a newline."""
        rest, self._partial = self._partial, b""
        return [_clean(rest.decode("utf-8", "replace"))] if rest else []


def _clean(line: str) -> str:
    line = line.rstrip("\r")
    cr = line.rfind("\r")
    return line[cr + 1 :] if cr >= 0 else line


class RunOutput:
    """The sink for one run's lines: the log file, the last lines, the subscribers."""

    def __init__(
        self,
        log_file: Path,
        send: Callable[[list[str]], None],
        *,
        on_last_line: Callable[[str], None] | None = None,
        tail: int = 20,
        flush_interval: float = 0.05,
        max_batch: int = 2000,
    ) -> None:
        self.log_file = log_file
        self._send = send  # each batch of lines (the runner's listeners)
        self._on_last_line = on_last_line
        self.tail: collections.deque[str] = collections.deque(maxlen=tail)
        self._pending: list[str] = []
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._timer: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")
        self.write_error: str | None = None
        self._file: TextIO | None = None
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(log_file, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as e:
            self.write_error = f"Cannot write the run log {log_file}: {e.strerror or e}"
            log.error(self.write_error)

    def note(self, text: str) -> None:
        """A line from the app itself (what it prepared, why it stopped the run)."""
        self.add([APP_PREFIX + line for line in text.splitlines() or [""]], child=False)

    def add(self, lines: list[str], *, child: bool = True) -> None:
        if not lines:
            return
        if self._file is not None:
            try:
                self._file.write("\n".join(lines))
                self._file.write("\n")
            except OSError as e:
                self.write_error = f"Writing the run log {self.log_file} failed: {e.strerror or e}"
                log.error(self.write_error)
                self._close_file()
        if child:
            self.tail.extend(lines[-self.tail.maxlen :] if self.tail.maxlen else lines)
            if self._on_last_line is not None:
                self._on_last_line(lines[-1])
        self._pending.extend(lines)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        quiet = loop.time() - self._last_flush >= self._flush_interval
        if quiet or len(self._pending) >= self._max_batch:
            self.flush()  # a line after a quiet spell shows at once; a flood goes in batches
        elif self._timer is None:
            self._timer = loop.call_later(self._flush_interval, self.flush)

    def flush(self) -> None:
        """Send the pending lines to every subscriber as one list."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        with contextlib.suppress(RuntimeError):
            self._last_flush = asyncio.get_running_loop().time()
        if self._file is not None:
            try:
                self._file.flush()
            except OSError:
                pass
        if not batch:
            return
        self._send(batch)

    def close(self) -> None:
        self.flush()
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


async def pump(stream: asyncio.StreamReader, out: RunOutput, chunk: int = 64 * 1024) -> None:
    """Read ``stream`` to its end into ``out``; yields to the loop after every chunk."""
    splitter = LineSplitter()
    while True:
        data = await stream.read(chunk)
        if not data:
            break
        out.add(splitter.feed(data))
        # read() returns at once while the buffer holds data: let the loop breathe.
        await asyncio.sleep(0)
    out.add(splitter.close())


def new_log_file(runs: Path, started: float) -> Path:
    """A run's log in ``runs``, named for its start (``2026-12-07_16-30-00.log``; ``-2``,
    ``-3``… for a second run in the same second)."""
    stem = dt.datetime.fromtimestamp(started).strftime("%Y-%m-%d_%H-%M-%S")
    path, n = runs / f"{stem}.log", 1
    while path.exists():
        n += 1
        path = runs / f"{stem}-{n}.log"
    return path
