"""A Windows Job Object with kill-on-close: every server in it dies when the app does.

The app holds the only handle to the job; when the app process ends for any reason
(crash, Task Manager, log-off) Windows closes the handle and, because of
``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE``, ends every process in the job. This is what
well-known supervisors (llama-swap, Chromium, the Python launcher) do. Plain ctypes, no
pywin32; ``kernel32`` is injectable so the calls are tested on any OS.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger(__name__)

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9  # JobObjectExtendedLimitInformation
PROCESS_SET_QUOTA = 0x0100
PROCESS_TERMINATE = 0x0001


class IO_COUNTERS(ctypes.Structure):  # noqa: N801 - the Windows name
    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in (
            "ReadOperationCount",
            "WriteOperationCount",
            "OtherOperationCount",
            "ReadTransferCount",
            "WriteTransferCount",
            "OtherTransferCount",
        )
    ]


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", ctypes.c_uint32),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", ctypes.c_uint32),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", ctypes.c_uint32),
        ("SchedulingClass", ctypes.c_uint32),
    ]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


def _last_error() -> int:
    get = getattr(ctypes, "get_last_error", None)  # Windows only
    return get() if get else 0


def _kernel32() -> Any:
    return ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]


class KillOnCloseJob:
    """Created on first use; ``assign(pid)`` puts a process into it."""

    def __init__(self, kernel32: Any = None) -> None:
        self._k = kernel32
        self._job: Any = None

    def _ensure(self) -> Any:
        if self._job is not None:
            return self._job
        k = self._k = self._k or _kernel32()
        job = k.CreateJobObjectW(None, None)
        if not job:
            raise OSError(f"CreateJobObjectW failed (error {_last_error()})")
        info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        ok = k.SetInformationJobObject(
            job,
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
            ctypes.byref(info),
            ctypes.sizeof(info),
        )
        if not ok:
            k.CloseHandle(job)
            raise OSError(f"SetInformationJobObject failed (error {_last_error()})")
        self._job = job
        return job

    def assign(self, pid: int) -> bool:
        """Put ``pid`` in the job; False (logged) when Windows refuses."""
        try:
            job = self._ensure()
            handle = self._k.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)
            if not handle:
                raise OSError(f"OpenProcess({pid}) failed (error {_last_error()})")
            try:
                if not self._k.AssignProcessToJobObject(job, handle):
                    raise OSError(f"AssignProcessToJobObject failed (error {_last_error()})")
            finally:
                self._k.CloseHandle(handle)
        except OSError as e:
            log.warning("PID %d will not die with the app (no job object): %s", pid, e)
            return False
        return True
