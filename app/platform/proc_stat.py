"""Linux's ``/proc/PID/stat``, read directly where one read per process is all a look at the
process table needs (a process group's stop looks twice, and a switch waits for it).

Start times are in clock ticks since boot, as the kernel gives them; psutil turns them into
wall-clock seconds with a boot time rounded to the second, and reads several files per
process to do it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable

import psutil

LINUX_PROC = sys.platform.startswith("linux") and os.path.isdir("/proc/self")
_BOOT_TIME: list[float] = []


def _fields(pid: int | str) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command name (state first)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rfind(b")") + 2 :].split()


def started_since(since: float) -> Iterable[int]:
    """The PIDs of processes that may have started at ``since`` (``time.time()``) or later:
    every one, but on Linux only the live ones that did, from one read each. A process that
    cannot be read is kept (the caller decides with psutil)."""
    if not LINUX_PROC:
        return psutil.pids()
    if not _BOOT_TIME:
        _BOOT_TIME.append(psutil.boot_time())
    boot, ticks = _BOOT_TIME[0], os.sysconf("SC_CLK_TCK")
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = _fields(name)
            if fields[0] == b"Z" or boot + int(fields[19]) / ticks < since:
                continue  # a zombie, or older
        except (OSError, IndexError, ValueError):
            pass
        out.append(int(name))
    return out


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that ``/proc/PID/stat`` gives start times in."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def started_before(pid: int, ticks: int) -> bool:
    """True when process ``pid`` surely started before ``ticks`` (``boot_ticks``): two ticks
    earlier at least, as start times are whole ticks. False when it cannot be read."""
    try:
        return int(_fields(pid)[19]) < ticks - 2
    except (OSError, IndexError, ValueError):
        return False
