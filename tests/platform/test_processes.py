"""Every OS branch of process handling, exercised on one machine by injecting the platform."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil

from app.platform.processes import PosixProcesses, WindowsProcesses, _tree, process_platform


def test_branch_selection() -> None:
    assert isinstance(process_platform("win32"), WindowsProcesses)
    assert isinstance(process_platform("linux"), PosixProcesses)
    assert isinstance(process_platform("darwin"), PosixProcesses)


def test_windows_spawns_a_new_process_group() -> None:
    kw = WindowsProcesses().spawn_kwargs()
    assert kw["creationflags"] & WindowsProcesses.CREATE_NEW_PROCESS_GROUP
    assert "start_new_session" not in kw


def test_posix_signals_the_whole_group() -> None:
    calls: list[tuple[int, int]] = []
    plat = PosixProcesses(killpg=lambda pg, sig: calls.append((pg, sig)), getpgid=lambda pid: 4242)
    assert plat.spawn_kwargs() == {"start_new_session": True}
    plat.terminate_tree(99999999)
    plat.kill_tree(99999999)
    # TERM is followed by CONT so a stopped (hung) process can act on it
    assert calls == [(4242, signal.SIGTERM), (4242, signal.SIGCONT), (4242, signal.SIGKILL)]


def _spawn_tree() -> subprocess.Popen:
    # a parent with a grandchild, as a wrapper script around llama-server would be
    code = (
        "import subprocess,sys,time;"
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
        "print('up',flush=True); time.sleep(60)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )


def test_windows_tree_kill_reaches_grandchildren() -> None:
    # The Windows branch kills through psutil, which works the same on this machine.
    p = _spawn_tree()
    assert p.stdout.readline().strip() == b"up"
    tree = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
    assert len(tree) == 2
    WindowsProcesses().kill_tree(p.pid)
    p.wait(5)
    gone, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive


def test_posix_terminate_reaches_grandchildren() -> None:
    p = _spawn_tree()
    assert p.stdout.readline().strip() == b"up"
    tree = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
    assert len(tree) == 2
    # the tree as the stop collects it (from /proc per process on Linux) is the same
    assert [q.pid for q in _tree(p.pid)] == [q.pid for q in tree]
    PosixProcesses().terminate_tree(p.pid)
    p.wait(5)
    gone, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive
