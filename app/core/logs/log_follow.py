"""Follow a growing text log like ``tail -F``, on asyncio, without Qt.

``LogFollower(path)`` yields lists of complete lines as they are appended:

- it starts from the last ``last_lines`` lines of the file (the whole file when it is
  created later, or replaced, since everything in a new file is new);
- a line is yielded only once its ``\\n`` has been written; a partial line is carried over
  between reads, so a line is never split, and neither is a UTF-8 sequence (lines are
  decoded only when complete; bytes that are not UTF-8 become U+FFFD, never an error);
- it survives truncation (reads again from the start), rotation (drains the old file,
  then opens the new one at the path) and deletion + recreation;
- it polls with ``os.stat`` — 50 ms while data flows, backing off to 250 ms when idle —
  so it needs no extra dependency and works the same on every OS and file system;
- ``stop()`` ends the iteration promptly; so does cancelling the task that iterates.

On POSIX the file stays open between polls, so the last lines written to a file just
before it is rotated are still read. On Windows it is opened per read instead, because an
open handle would stop the writer from renaming the file (lines written in the last poll
interval before a rotation can then be missed there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.05
MAX_INTERVAL = 0.25


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\r") else text


def read_last_lines(f: BinaryIO, n: int, max_bytes: int) -> tuple[list[bytes], bytes, int]:
    """From an open file: its last ``n`` complete lines, the trailing partial line, the end.

    Reads backwards in blocks, at most ``max_bytes``; the returned offset is where the
    next read starts (the end of the file at the time of the call).
    """
    f.seek(0, os.SEEK_END)
    end = f.tell()
    if n <= 0 or end == 0:
        f.seek(end)
        tail = b""
        if end:  # keep the trailing partial line so that it completes later
            f.seek(max(0, end - 65536))
            chunk = f.read(end - f.tell())
            tail = chunk.rsplit(b"\n", 1)[-1] if b"\n" in chunk else b""
        return [], tail, end
    block = 65536
    pos = end
    data = b""
    while pos > 0 and data.count(b"\n") <= n and end - pos < max_bytes:
        step = min(block, pos, max_bytes - (end - pos))
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
    f.seek(end)
    parts = data.split(b"\n")
    tail = parts.pop()  # after the last newline: an incomplete line (or b"")
    if pos > 0 and parts:
        parts = parts[1:]  # the first piece may be the end of a line we did not read
    return parts[-n:], tail, end


class LogFollower:
    """Yield batches of new complete lines of ``path`` until ``stop()``."""

    def __init__(
        self,
        path: Path | str,
        *,
        last_lines: int = 1000,
        min_interval: float = MIN_INTERVAL,
        max_interval: float = MAX_INTERVAL,
        read_chunk: int = 1 << 20,
        max_line_bytes: int = 1 << 20,
        hold_open: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.last_lines = last_lines
        self.min_interval = min_interval
        self.max_interval = max(max_interval, min_interval)
        self.read_chunk = read_chunk
        self.max_line_bytes = max_line_bytes
        self.hold_open = os.name != "nt" if hold_open is None else hold_open
        self._stop = asyncio.Event()
        self._file: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None
        self._pos = 0
        self._carry = b""
        self._started = False
        self.rotations = 0  # how often the file was replaced or truncated
        self.polls = 0  # finished polls: lets a test wait for "looked and found nothing"

    # ── Control ───────────────────────────────────────────────────────────────
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __aiter__(self) -> AsyncIterator[list[str]]:
        return self.batches()

    async def batches(self) -> AsyncIterator[list[str]]:
        """The iteration itself; ends after ``stop()``; closes the file however it ends."""
        if self._started:
            raise RuntimeError("a LogFollower can be iterated only once")
        self._started = True
        interval = self.min_interval
        try:
            first = self._open_initial()
            if first:
                yield first
            while not self._stop.is_set():
                lines, more = self._poll()
                self.polls += 1
                if lines:
                    yield lines
                if more:  # a backlog: hand it over in chunks, letting the loop breathe
                    await asyncio.sleep(0)
                    interval = self.min_interval
                    continue
                interval = self.min_interval if lines else min(interval * 1.5, self.max_interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), interval)
        finally:
            self._close()

    # ── Internals ─────────────────────────────────────────────────────────────
    def _open(self) -> BinaryIO | None:
        try:
            return open(self.path, "rb")  # noqa: SIM115 - kept open between polls
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            log.debug("Cannot open %s: %s", self.path, e)
            return None

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _open_initial(self) -> list[str]:
        f = self._open()
        if f is None:
            return []
        try:
            self._ident = _identity(os.fstat(f.fileno()))
            lines, self._carry, self._pos = read_last_lines(
                f, self.last_lines, max(self.last_lines, 1) * 4096
            )
        except OSError:
            f.close()
            return []
        self._keep(f)
        out = [_decode(x) for x in lines]
        if len(self._carry) > self.max_line_bytes:
            out += self._flush_carry()
        return out

    def _keep(self, f: BinaryIO) -> None:
        if self.hold_open:
            self._file = f
        else:
            f.close()

    def _file_for_read(self) -> BinaryIO | None:
        if self._file is not None:
            return self._file
        f = self._open()
        if f is None:
            return None
        try:
            if _identity(os.fstat(f.fileno())) != self._ident:
                f.close()  # replaced between our stat and open: the next poll handles it
                return None
        except OSError:
            f.close()
            return None
        return f

    def _poll(self) -> tuple[list[str], bool]:
        """One step: new lines and whether more data is waiting right now."""
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if self._ident is None:  # no file yet (or it was gone at the last poll)
            if st is None:
                return [], False
            return self._switch_to_new(drain=False)
        if st is None or _identity(st) != self._ident:
            # Rotated, deleted or replaced. Drain what was written to the old file first.
            lines, more = self._read_available()
            if more:
                return lines, True
            flushed = self._flush_carry()
            if st is None:
                self._close()
                self._ident = None
                return lines + flushed, False
            new_lines, more = self._switch_to_new(drain=True)
            return lines + flushed + new_lines, more
        if st.st_size < self._pos:  # truncated in place: start again from the top
            flushed = self._flush_carry()
            self.rotations += 1
            self._pos = 0
            lines, more = self._read_available()
            return flushed + lines, more
        if st.st_size == self._pos:
            return [], False
        return self._read_available()

    def _switch_to_new(self, drain: bool) -> tuple[list[str], bool]:
        self._close()
        f = self._open()
        if f is None:
            self._ident = None
            return [], False
        try:
            self._ident = _identity(os.fstat(f.fileno()))
        except OSError:
            f.close()
            self._ident = None
            return [], False
        if drain:
            self.rotations += 1
        self._pos = 0
        self._carry = b""
        self._keep(f)
        return self._read_available()

    def _read_available(self) -> tuple[list[str], bool]:
        f = self._file_for_read()
        if f is None:
            return [], False
        try:
            f.seek(self._pos)
            data = f.read(self.read_chunk)
        except OSError as e:
            log.debug("Reading %s failed: %s", self.path, e)
            data = b""
        finally:
            if f is not self._file:
                f.close()
        if not data:
            return [], False
        self._pos += len(data)
        return self._split(data), len(data) >= self.read_chunk

    def _split(self, data: bytes) -> list[str]:
        parts = (self._carry + data).split(b"\n")
        self._carry = parts.pop()
        if len(self._carry) > self.max_line_bytes:  # a runaway line: show it in pieces
            parts.append(self._carry)
            self._carry = b""
        return [_decode(p) for p in parts]

    def _flush_carry(self) -> list[str]:
        """The partial last line of a file that will not grow any more."""
        if not self._carry:
            return []
        out = [_decode(self._carry)]
        self._carry = b""
        return out


class FollowHandle:
    """A running follower feeding a callback; ``stop()`` it when its view goes away."""

    def __init__(self, follower: LogFollower, task: asyncio.Task[None]) -> None:
        self.follower = follower
        self.task = task

    @property
    def path(self) -> Path:
        return self.follower.path

    def stop(self) -> None:
        self.follower.stop()

    async def wait_stopped(self) -> None:
        self.follower.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    @property
    def running(self) -> bool:
        return not self.task.done()


def start_follow(
    path: Path | str,
    on_lines: Callable[[list[str]], None],
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    **kwargs,
) -> FollowHandle:
    """Start following ``path`` on the event loop, calling ``on_lines(batch)`` per batch."""
    follower = LogFollower(path, **kwargs)

    async def run() -> None:
        async for batch in follower:
            try:
                on_lines(batch)
            except Exception:
                log.exception("A log view failed to take lines from %s", follower.path)

    loop = loop or asyncio.get_event_loop()
    task = loop.create_task(run(), name=f"follow-{follower.path.name}")
    return FollowHandle(follower, task)
