"""How child process trees are started and stopped on each OS.

One small class per OS behind one interface; ``process_platform()`` picks one at run time
and tests inject another to exercise every branch on one machine.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Protocol

import psutil


class ProcessPlatform(Protocol):
    name: str

    def spawn_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``create_subprocess_exec``/``Popen``: a new process group."""
        ...

    def terminate_tree(self, pid: int) -> None:
        """Ask the process and everything it started to exit."""
        ...

    def kill_tree(self, pid: int) -> None:
        """Kill the process and everything it started, now."""
        ...


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class PosixProcesses:
    """Linux and macOS: the child leads its own session, signals go to the whole group."""

    name = "posix"

    def __init__(self, killpg=None, getpgid=None) -> None:
        self._killpg = killpg or getattr(os, "killpg", None)
        self._getpgid = getpgid or getattr(os, "getpgid", None)

    def spawn_kwargs(self) -> dict[str, Any]:
        return {"start_new_session": True}

    def _signal(self, pid: int, sig: int) -> None:
        # Collect grandchildren first: one that left the group still dies with the tree.
        stragglers = _tree(pid)[1:]
        try:
            self._killpg(self._getpgid(pid), sig)
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


class WindowsProcesses:
    """Windows: a new process group (the seed's limitation 4) and a tree kill via psutil."""

    name = "windows"
    CREATE_NEW_PROCESS_GROUP = 0x00000200
    CREATE_NO_WINDOW = 0x08000000

    def spawn_kwargs(self) -> dict[str, Any]:
        return {"creationflags": self.CREATE_NEW_PROCESS_GROUP | self.CREATE_NO_WINDOW}

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
    return PosixProcesses()
