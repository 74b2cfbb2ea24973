"""The llama-server log files, their one format: size-capped rotation (at each start, and
while a server's log grows: ``LogRotator``), the header line written at each start
(``===== <time> familylog-tray start: <command>``) and the app's notes, and reading them
back."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import os
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def rotate_if_large(path: Path, max_bytes: int, backups: int) -> bool:
    """Rotate ``path`` to ``path.1`` … ``path.N`` when it is over ``max_bytes``."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    if backups <= 0:
        path.unlink(missing_ok=True)
        return True
    for i in range(backups - 1, 0, -1):
        src = path.with_name(f"{path.name}.{i}")
        if src.exists():
            os.replace(src, path.with_name(f"{path.name}.{i + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))
    return True


def copy_truncate(path: Path, max_bytes: int, backups: int) -> bool:
    """Rotate the log of a server that is writing to it: copy it to ``path.1`` (older ones
    shifted), then cut it to nothing; the server, which opened it for appending, writes on
    at its new end. As logrotate's ``copytruncate``: a line written during the copy itself
    may be lost, never the server's output after it."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    if backups > 0:
        for i in range(backups - 1, 0, -1):
            src = path.with_name(f"{path.name}.{i}")
            if src.exists():
                os.replace(src, path.with_name(f"{path.name}.{i + 1}"))
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)
    return True


class LogRotator:
    """Keeps the logs of running servers under the size limit while they grow: every
    ``interval`` seconds (a ``stat`` per log) a log over ``limits()[0]`` is rotated with
    ``copy_truncate``. A failure (a full disk) is logged and tried again later."""

    def __init__(self, limits: Callable[[], tuple[int, int]], interval: float = 2.0) -> None:
        self._limits = limits
        self.interval = interval
        self._paths: set[Path] = set()
        self._task: asyncio.Task[None] | None = None

    def follow(self, path: Path) -> None:
        self._paths.add(path)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="log-rotator")

    def forget(self, path: Path | None) -> None:
        if path is not None:
            self._paths.discard(path)

    async def close(self) -> None:
        self._paths.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._paths:
            await asyncio.sleep(self.interval)
            size, backups = self._limits()
            for path in list(self._paths):
                try:
                    if path.stat().st_size <= size:
                        continue
                    if await loop.run_in_executor(None, copy_truncate, path, size, backups):
                        log.info("Rotated %s (over %d bytes) while its server writes", path, size)
                except OSError as e:
                    log.warning("Cannot rotate %s: %s", path, e)


def safe_name(text: str) -> str:
    """``text`` as part of a file name: anything but letters, digits, ``.-_`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"


NOTE_PREFIX = "===== "
START_MARK = "familylog-tray start:"
SECRET_FLAGS = ("--api-key",)


def redact(cmd: list[str]) -> list[str]:
    """The command with any ``--api-key`` value hidden (``--api-key K`` and
    ``--api-key=K``), for logs and the ownership record."""
    out = list(cmd)
    for i, arg in enumerate(out):
        if arg in SECRET_FLAGS and i + 1 < len(out):
            out[i + 1] = "***"
        for flag in SECRET_FLAGS:
            if arg.startswith(flag + "="):
                out[i] = flag + "=***"
    return out


def open_server_log(path: Path, cmd: list[str], max_bytes: int, backups: int) -> BinaryIO:
    """Open the log for appending, after rotation, and write the start header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rotate_if_large(path, max_bytes, backups)
    f = open(path, "ab", buffering=0)  # noqa: SIM115 - handed to the child, closed by the caller
    try:
        stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        header = f"\n{NOTE_PREFIX}{stamp} {START_MARK} {shlex.join(redact(cmd))}\n"
        f.write(header.encode("utf-8"))
    except OSError:
        f.close()
        raise
    return f


def append_note(path: Path, text: str) -> None:
    """Append one line from the app (exit codes, kills) so the log tells the whole story."""
    stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        with open(path, "ab") as f:
            f.write(f"{NOTE_PREFIX}{stamp} familylog-tray: {text}\n".encode())
    except OSError:
        pass


def tail_lines(path: Path, n: int = 20, max_bytes: int = 64 * 1024) -> list[str]:
    """The last ``n`` lines of a log, decoded leniently."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-n:]


def _is_error(line: str) -> bool:
    # llama-server marks its levels after the timestamp: "0.00.024.627 E srv  load_model: ..."
    parts = line.split(None, 2)
    return len(parts) >= 2 and parts[1] == "E"


def last_output(path: Path, n: int = 5) -> list[str]:
    """What to show of a server that died: its own last ``n`` non-blank lines (without the
    app's ``=====`` notes), error lines first. At ``-lv 4`` the real reason is often
    followed by clean-up chatter, so the last error lines of the tail are kept in front."""
    raw = tail_lines(path, 200)
    starts = [i for i, ln in enumerate(raw) if ln.startswith(NOTE_PREFIX) and START_MARK in ln]
    if starts:  # only this start's output, not an earlier run's
        raw = raw[starts[-1] + 1 :]
    tail = [ln for ln in raw if ln.strip() and not ln.startswith(NOTE_PREFIX)]
    last = tail[-n:]
    errors = [ln for ln in tail[:-n] if _is_error(ln)][-n:]
    return errors + last


def last_start_section(data: bytes) -> bytes:
    """The part of a per-port log written by the latest start (from its header's mark)."""
    i = data.rfind(START_MARK.encode())
    return data if i < 0 else data[i:]
