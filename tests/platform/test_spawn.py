"""Starting a child without asyncio's waiting thread (a pidfd the loop watches), and the
one-read look at ``/proc`` the group stop uses to skip processes older than the group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

import psutil
import pytest

from app.platform import proc_stat, spawn

linux = pytest.mark.skipif(not proc_stat.LINUX_PROC, reason="Linux /proc and pidfd")


@linux
async def test_a_child_is_waited_for_without_a_thread() -> None:
    assert spawn.pidfd_works()
    threads = threading.active_count()
    ok = await spawn.start_child([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert isinstance(ok, spawn.PidfdChild)
    assert threading.active_count() == threads  # asyncio's watcher would start one
    assert await asyncio.wait_for(ok.wait(), 60) == 3
    assert ok.returncode == 3
    assert await ok.wait() == 3  # again, as asyncio's Process allows


@linux
async def test_a_signalled_child_reads_as_asyncio_says_it() -> None:
    child = await spawn.start_child(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert child.returncode is None
        waiting = asyncio.ensure_future(child.wait())
        await asyncio.sleep(0)
        assert not waiting.done()
        os.kill(child.pid, signal.SIGTERM)
        assert await asyncio.wait_for(waiting, 60) == -signal.SIGTERM
    finally:
        if child.returncode is None:  # a failed check: leave no process behind
            os.kill(child.pid, signal.SIGKILL)
            await asyncio.wait_for(child.wait(), 60)


async def test_without_a_pidfd_asyncio_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spawn, "pidfd_works", lambda: False)
    child = await spawn.start_child([sys.executable, "-c", "pass"])
    assert isinstance(child, asyncio.subprocess.Process)
    assert await asyncio.wait_for(child.wait(), 60) == 0


@linux
def test_only_processes_started_since_are_candidates() -> None:
    before = proc_stat.boot_ticks()
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        recent = set(proc_stat.started_since(psutil.Process(p.pid).create_time() - 1))
        assert p.pid in recent
        assert 1 not in recent  # init started at boot
        assert proc_stat.started_before(1, before)
        assert not proc_stat.started_before(p.pid, before)
    finally:
        p.kill()
        p.wait()
