"""An exclusive lock on a file, held by an open file and released by the OS when the
process ends however it ends (crash, SIGKILL, power cut: no stale lock to clean up).

POSIX: ``flock`` on the file; Windows: ``msvcrt.locking`` on its first byte. The file is
opened non-inheritable (Python's default), so a child the app starts never holds it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Protocol


class FileLock(Protocol):
    def try_lock(self) -> bool:
        """Take the lock now if it is free; True when this process holds it."""
        ...

    def unlock(self) -> None: ...


class _HeldFile:
    """A lock held by an open file descriptor; each OS says how it takes and lets go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_lock(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._lock(fd)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def unlock(self) -> None:
        if self._fd is not None:
            self._release(self._fd)
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None

    def _lock(self, fd: int) -> None:
        """Take the lock on ``fd`` without waiting; OSError when another process holds it."""
        raise NotImplementedError

    def _release(self, fd: int) -> None:
        """Anything to do before ``fd`` is closed."""


class PosixFileLock(_HeldFile):
    def _lock(self, fd: int) -> None:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class WindowsFileLock(_HeldFile):
    def _lock(self, fd: int) -> None:
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _release(self, fd: int) -> None:
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            pass


def file_lock(path: Path, platform: str | None = None) -> FileLock:
    platform = platform or sys.platform
    return WindowsFileLock(path) if platform.startswith("win") else PosixFileLock(path)
