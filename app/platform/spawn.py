"""Starting a child process for asyncio without a thread to wait for it, where the OS allows.

``asyncio.create_subprocess_exec`` on Python 3.11 starts a thread per child to wait for its
exit, and waits until that thread runs: on a busy 2-core machine that took 2-13 ms, against
0.3 ms for the ``Popen`` itself (a switch waits for the server's start). On Linux 5.3 and
later a process file descriptor (``pidfd_open``) becomes readable when the child exits; the
event loop watches it like a socket, so nothing waits in a thread. Python 3.12 does the same
inside asyncio. Elsewhere (or when the kernel refuses a pidfd) it is asyncio's own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any, Protocol


class Child(Protocol):
    """What a started process offers, as ``asyncio.subprocess.Process`` does."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class PidfdChild:
    """A ``Popen`` child whose exit the loop learns from its pidfd."""

    def __init__(self, popen: subprocess.Popen, pidfd: int, loop: asyncio.AbstractEventLoop):
        self._popen = popen
        self._pidfd = pidfd
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        loop.add_reader(pidfd, self._on_exit)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def _on_exit(self) -> None:
        code = self._popen.poll()  # reaps it: waitpid(WNOHANG)
        if code is None:
            return  # woken early (cannot happen for a pidfd): wait on
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        """The exit code once it exited (negative: the signal that ended it)."""
        return await asyncio.shield(self._exited)


_PIDFD: list[bool] = []


def pidfd_works() -> bool:
    """True where the kernel gives process file descriptors (Linux 5.3+, and no sandbox
    that refuses them); looked at once."""
    if not _PIDFD:
        ok = sys.platform.startswith("linux") and hasattr(os, "pidfd_open")
        if ok:
            try:
                os.close(os.pidfd_open(os.getpid()))
            except OSError:
                ok = False
        _PIDFD.append(ok)
    return _PIDFD[0]


async def start_child(argv: list[str], **kwargs: Any) -> Child:
    """Start ``argv`` (``Popen``'s keyword arguments: stdin, stdout, stderr, env,
    start_new_session...): watched through a pidfd where there is one, else by asyncio."""
    if not pidfd_works():
        return await asyncio.create_subprocess_exec(*argv, **kwargs)
    loop = asyncio.get_running_loop()
    popen = subprocess.Popen(argv, **kwargs)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:  # cannot happen once one was given (the child is not reaped yet)
        popen.kill()
        popen.wait()
        raise
    return PidfdChild(popen, pidfd, loop)
