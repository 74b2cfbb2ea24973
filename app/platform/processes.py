"""How child process trees are started and stopped on each OS.

One small class per OS behind one interface; ``process_platform()`` picks one at run time
and tests inject another to exercise every branch on one machine.

Beyond starting and stopping, each class makes the children die with the app where the
OS allows it: on Linux the kernel sends them SIGKILL when the app dies
(``PR_SET_PDEATHSIG``), on Windows they sit in a Job Object that is closed (and its
processes killed) when the app dies. macOS has neither; there the ownership record reaps
leftovers at the next start (as it does everywhere).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any, Protocol

import psutil

from app.platform.win_job import KillOnCloseJob

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class ProcessPlatform(Protocol):
    name: str

    def spawn_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``create_subprocess_exec``/``Popen``: a new process group."""
        ...

    def spawn_args(self, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
        """The command line and keyword arguments to start ``argv`` with, as cheaply as the
        OS allows (the server manager's spawns: a switch waits for them)."""
        ...

    def adopt(self, pid: int) -> None:
        """Called right after a spawn: tie the child's life to the app where the OS can."""
        ...

    def terminate_tree(self, pid: int) -> None:
        """Ask the process and everything it started to exit."""
        ...

    def kill_tree(self, pid: int) -> None:
        """Kill the process and everything it started, now."""
        ...


def _proc_children(pid: int) -> list[int] | None:
    """The direct children of ``pid`` from Linux's ``/proc/PID/task/TID/children`` (a few
    small reads), or None where that file is missing (another OS, a kernel without it)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    out: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return out


def _tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants. On Linux read from ``/proc`` per process (well
    under a millisecond for llama-server, which has no children), not by psutil's scan of
    every process on the machine (6 ms with 120 processes on a busy 2-core machine; a stop
    waits for it)."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return []
    found, todo = [root], [pid]
    while todo:
        kids = _proc_children(todo.pop())
        if kids is None:
            try:
                return [root, *root.children(recursive=True)]
            except psutil.Error:
                return [root]
        for child in kids:
            try:
                found.append(psutil.Process(child))
            except psutil.Error:
                continue
            todo.append(child)
    return found


class PosixProcesses:
    """Linux and macOS: the child leads its own session, signals go to the whole group."""

    name = "posix"

    def __init__(self, killpg=None, getpgid=None) -> None:
        self._killpg = killpg or getattr(os, "killpg", None)
        self._getpgid = getpgid or getattr(os, "getpgid", None)

    def spawn_kwargs(self) -> dict[str, Any]:
        return {"start_new_session": True}

    def spawn_args(self, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
        return list(argv), self.spawn_kwargs()

    def adopt(self, pid: int) -> None:
        return None

    def _signal(self, pid: int, sig: int) -> None:
        # Collect grandchildren first: one that left the group still dies with the tree.
        stragglers = _tree(pid)[1:]
        try:
            pgid = self._getpgid(pid)
            self._killpg(pgid, sig)
            if sig == signal.SIGTERM:
                # A stopped (SIGSTOP, hung in a debugger) process handles TERM only once it
                # runs again, as systemd does it: TERM, then CONT.
                self._killpg(pgid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass
        for p in stragglers:
            try:
                if self._getpgid(p.pid) != pid:
                    p.send_signal(sig)
            except (ProcessLookupError, PermissionError, psutil.Error):
                pass

    def terminate_tree(self, pid: int) -> None:
        self._signal(pid, signal.SIGTERM)

    def kill_tree(self, pid: int) -> None:
        self._signal(pid, signal.SIGKILL)


class MacProcesses(PosixProcesses):
    """macOS: no parent-death signal; leftovers are reaped from the record at the next start."""

    name = "macos"


def libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` ready to call (Linux), or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return fn


class DieWithParent:
    """The ``preexec_fn`` run in the child between fork and exec: ask the kernel to send
    ``sig`` when the parent dies, and check the parent did not die before the request.

    Kept minimal (one foreign call, two syscalls, no allocation worth the name): the
    function pointer is looked up in the parent, before the fork.
    """

    def __init__(self, prctl: Callable[..., int], parent_pid: int, sig: int) -> None:
        self.prctl = prctl
        self.parent_pid = parent_pid
        self.sig = sig

    def __call__(self) -> None:
        self.prctl(PR_SET_PDEATHSIG, self.sig, 0, 0, 0)
        if os.getppid() != self.parent_pid:  # the app died between fork and prctl
            os.kill(os.getpid(), self.sig)


class LinuxProcesses(PosixProcesses):
    """Linux: as POSIX, plus ``PR_SET_PDEATHSIG`` so a server gets SIGKILL when the app dies,
    even from SIGKILL or an OOM kill, before any next start could reap it.

    The kernel sends the signal when the *thread* that forked the child ends; the app
    spawns from its event-loop thread, which lives as long as the app.
    """

    name = "linux"
    _UNKNOWN = object()

    def __init__(
        self, killpg=None, getpgid=None, prctl=None, getpid=None, setpriv=_UNKNOWN
    ) -> None:
        super().__init__(killpg, getpgid)
        self._prctl = prctl
        self._getpid = getpid or os.getpid
        self.death_signal = signal.SIGKILL
        self._setpriv = setpriv  # its path, None: not usable; _UNKNOWN: looked up at first use

    def setpriv(self) -> str | None:
        """util-linux's ``setpriv`` when it can set the death signal (2.33 and later)."""
        if self._setpriv is self._UNKNOWN:
            self._setpriv = None
            path = shutil.which("setpriv")
            if path:
                try:
                    out = subprocess.run(
                        [path, "--help"], capture_output=True, text=True, timeout=5
                    ).stdout
                except (OSError, subprocess.SubprocessError):
                    out = ""
                self._setpriv = path if "--pdeathsig" in out else None
        return self._setpriv  # type: ignore[return-value]

    def spawn_args(self, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
        """With ``setpriv``, the death signal is set by ``setpriv --pdeathsig KILL --`` in the
        child, before it execs ``argv`` (same PID), so no ``preexec_fn`` runs: Python then
        starts the child with vfork, about 0.3 ms, instead of a fork of the whole app and
        Python code in the child, 10-20 ms from a 100 MB app on a busy 2-core machine
        (``bench/router.py``'s switch). Without it, as ``spawn_kwargs``. Unlike
        ``DieWithParent``, setpriv does not check that the app is still alive after it set
        the signal; a child the app left in that instant is reaped at the next start."""
        path = self.setpriv()
        if path is None:
            return list(argv), self.spawn_kwargs()
        sig = signal.Signals(self.death_signal).name.removeprefix("SIG")
        return [path, "--pdeathsig", sig, "--", *argv], PosixProcesses.spawn_kwargs(self)

    def spawn_kwargs(self) -> dict[str, Any]:
        kw = super().spawn_kwargs()
        if self._prctl is None:
            self._prctl = libc_prctl()
        if self._prctl is not None:
            kw["preexec_fn"] = DieWithParent(self._prctl, self._getpid(), self.death_signal)
        return kw


class WindowsProcesses:
    """Windows: a new process group (the seed's limitation 4), a Job Object with
    kill-on-close, and a tree kill via psutil."""

    name = "windows"
    CREATE_NEW_PROCESS_GROUP = 0x00000200
    CREATE_NO_WINDOW = 0x08000000

    def __init__(self, job: KillOnCloseJob | None = None) -> None:
        self.job = job or KillOnCloseJob()

    def spawn_kwargs(self) -> dict[str, Any]:
        return {"creationflags": self.CREATE_NEW_PROCESS_GROUP | self.CREATE_NO_WINDOW}

    def spawn_args(self, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
        return list(argv), self.spawn_kwargs()

    def adopt(self, pid: int) -> None:
        self.job.assign(pid)

    def terminate_tree(self, pid: int) -> None:
        procs = _tree(pid)
        ctrl_break = getattr(signal, "CTRL_BREAK_EVENT", None)
        for p in procs:
            try:
                if p.pid == pid and ctrl_break is not None:
                    p.send_signal(ctrl_break)
                else:
                    p.terminate()
            except psutil.Error:
                pass

    def kill_tree(self, pid: int) -> None:
        for p in reversed(_tree(pid)):
            try:
                p.kill()
            except psutil.Error:
                pass


def process_platform(platform: str | None = None) -> ProcessPlatform:
    platform = platform or sys.platform
    if platform.startswith("win"):
        return WindowsProcesses()
    if platform.startswith("linux"):
        return LinuxProcesses()
    if platform == "darwin":
        return MacProcesses()
    return PosixProcesses()
