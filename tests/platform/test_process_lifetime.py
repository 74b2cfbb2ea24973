"""Children die with the app: PR_SET_PDEATHSIG on Linux (real), a kill-on-close Job Object
on Windows (its calls checked through an injected kernel32), and run-time selection."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

import psutil
import pytest

from app.core.servers.manager import LlamaServerManager
from app.platform.processes import (
    PR_SET_PDEATHSIG,
    DieWithParent,
    LinuxProcesses,
    MacProcesses,
    PosixProcesses,
    WindowsProcesses,
    process_platform,
)
from app.platform.win_job import (
    JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    PROCESS_SET_QUOTA,
    PROCESS_TERMINATE,
    KillOnCloseJob,
)
from tests.support.app import alive
from tests.support.wait import wait_until

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")


def test_each_os_gets_its_class() -> None:
    assert type(process_platform("linux")) is LinuxProcesses
    assert type(process_platform("darwin")) is MacProcesses
    assert type(process_platform("win32")) is WindowsProcesses
    assert type(process_platform("freebsd13")) is PosixProcesses
    assert "preexec_fn" not in MacProcesses().spawn_kwargs()


# An "app" that starts a child the way the manager (spawn_args) or a run (spawn_kwargs)
# does, then waits to be killed.
APP = """
import subprocess, sys, time
from app.platform.processes import {cls}
plat = {cls}({init})
argv = [sys.executable, "-c", "import time; time.sleep(120)"]
if {how!r} == "spawn_args":
    argv, kw = plat.spawn_args(argv)
else:
    kw = plat.spawn_kwargs()
child = subprocess.Popen(argv, **kw)
print(child.pid, flush=True)
time.sleep(120)
"""


def _runs_the_child(pid: int) -> bool:
    """True once ``pid`` runs the sleeping child itself (not setpriv on its way to it)."""
    try:
        return psutil.Process(pid).cmdline()[1:2] == ["-c"]
    except psutil.Error:
        return False


@linux_only
@pytest.mark.parametrize(
    "cls, init, how, dies",
    [
        ("LinuxProcesses", "", "spawn_kwargs", True),
        ("LinuxProcesses", "", "spawn_args", True),  # setpriv where it has --pdeathsig
        ("LinuxProcesses", "setpriv=None", "spawn_args", True),  # no setpriv: preexec_fn
        ("PosixProcesses", "", "spawn_args", False),
    ],
)
def test_child_dies_when_the_app_is_killed(cls, init, how, dies) -> None:
    code = APP.format(cls=cls, init=init, how=how)
    app = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child_pid = int(app.stdout.readline())
    try:
        assert alive(child_pid)
        # Popen returns once setpriv runs; the death signal is set when it execs the child
        # (the instant spawn_args' docstring names, where reaping at the next start is left)
        assert wait_until(lambda: _runs_the_child(child_pid), 10)
        app.kill()  # SIGKILL: no handler of the app runs
        app.wait(10)
        if dies:
            assert wait_until(lambda: not alive(child_pid), 10)
        else:  # without the death signal the child is left behind: what reaping is for
            assert not wait_until(lambda: not alive(child_pid), 0.5)
    finally:
        if alive(child_pid):
            psutil.Process(child_pid).kill()
        if app.poll() is None:
            app.kill()
            app.wait()


@linux_only
def test_child_whose_parent_died_before_prctl_ends_itself() -> None:
    # The race the getppid() check closes: the parent died between fork and prctl.
    calls = []
    die = DieWithParent(lambda *a: calls.append(a) or 0, parent_pid=1, sig=signal.SIGKILL)
    p = subprocess.Popen([sys.executable, "-c", "print('should not run')"], preexec_fn=die)
    assert p.wait(10) == -signal.SIGKILL


def test_linux_spawn_kwargs_use_the_real_prctl() -> None:
    plat = LinuxProcesses(getpid=lambda: 4321)
    kw = plat.spawn_kwargs()
    assert kw["start_new_session"] is True
    die = kw["preexec_fn"]
    assert die.parent_pid == 4321 and die.sig == signal.SIGKILL
    if sys.platform == "linux":
        assert die.prctl is not None
    recorded = []
    fake = LinuxProcesses(prctl=lambda *a: recorded.append(a) or 0)
    fake.spawn_kwargs()["preexec_fn"].prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    assert recorded == [(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)]


@linux_only
def test_linux_spawn_args_set_the_death_signal_without_preexec_fn() -> None:
    plat = LinuxProcesses()
    argv, kw = plat.spawn_args(["llama-server", "--port", "1"])
    if plat.setpriv() is None:
        pytest.skip("no setpriv with --pdeathsig on this machine")
    # no Python code runs in the child, so the spawn can use vfork (a switch waits for it)
    assert "preexec_fn" not in kw and kw["start_new_session"] is True
    assert argv == [plat.setpriv(), "--pdeathsig", "KILL", "--", "llama-server", "--port", "1"]


def test_linux_without_setpriv_falls_back_to_preexec_fn() -> None:
    plat = LinuxProcesses(setpriv=None, prctl=lambda *a: 0)
    argv, kw = plat.spawn_args(["llama-server"])
    assert argv == ["llama-server"] and isinstance(kw["preexec_fn"], DieWithParent)


def test_an_old_setpriv_without_pdeathsig_is_not_used(tmp_path, monkeypatch) -> None:
    old = tmp_path / "setpriv"
    old.write_text("#!/bin/sh\necho 'Usage: setpriv [options] <program> [<argument>...]'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert LinuxProcesses().setpriv() is None


class FakeKernel32:
    """Records the Win32 calls; handles are small integers."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = fail
        self.limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION | None = None

    def CreateJobObjectW(self, attrs, name):  # noqa: N802 - the Win32 name
        self.calls.append(("CreateJobObjectW", attrs, name))
        return 0 if self.fail == "create" else 100

    def SetInformationJobObject(self, job, klass, info_ref, size):  # noqa: N802
        self.limits = info_ref._obj
        self.calls.append(("SetInformationJobObject", job, klass, size))
        return 1

    def OpenProcess(self, access, inherit, pid):  # noqa: N802
        self.calls.append(("OpenProcess", access, inherit, pid))
        return 200 + pid

    def AssignProcessToJobObject(self, job, handle):  # noqa: N802
        self.calls.append(("AssignProcessToJobObject", job, handle))
        return 0 if self.fail == "assign" else 1

    def CloseHandle(self, handle):  # noqa: N802
        self.calls.append(("CloseHandle", handle))
        return 1


def test_windows_job_object_kills_on_close() -> None:
    k = FakeKernel32()
    plat = WindowsProcesses(job=KillOnCloseJob(kernel32=k))
    plat.adopt(7)
    plat.adopt(8)
    names = [c[0] for c in k.calls]
    assert names.count("CreateJobObjectW") == 1  # one job for the app's lifetime
    set_info = next(c for c in k.calls if c[0] == "SetInformationJobObject")
    assert set_info[2] == JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS
    assert set_info[3] == ctypes.sizeof(JOBOBJECT_EXTENDED_LIMIT_INFORMATION)
    assert k.limits.BasicLimitInformation.LimitFlags == JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    assert ("OpenProcess", PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, 7) in k.calls
    assert ("AssignProcessToJobObject", 100, 207) in k.calls
    assert ("AssignProcessToJobObject", 100, 208) in k.calls
    # the process handles are closed, the job handle is kept (closing it kills the job)
    assert ("CloseHandle", 207) in k.calls and ("CloseHandle", 100) not in k.calls


@pytest.mark.parametrize("fail", ["create", "assign"])
def test_windows_job_failure_is_logged_not_fatal(fail, caplog) -> None:
    job = KillOnCloseJob(kernel32=FakeKernel32(fail=fail))
    assert job.assign(9) is False
    assert "PID 9 will not die with the app" in caplog.text


async def test_manager_adopts_every_server(llama_server_bin, tiny_model, port, tmp_path) -> None:
    adopted: list[int] = []

    class Recording(LinuxProcesses):
        def adopt(self, pid: int) -> None:
            adopted.append(pid)

    m = LlamaServerManager(llama_server_bin, log_dir=tmp_path, platform=Recording())
    st = await m.load_model(str(tiny_model), port=port, ctx_size=512)
    await m.shutdown()
    assert adopted == [st.pid]
