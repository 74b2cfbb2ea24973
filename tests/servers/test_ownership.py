"""The ownership record: orphans of an earlier run are reaped, strangers are never touched."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import psutil

from app.core.servers.ownership import OwnershipRecord
from app.platform.process_groups import GroupRef, marked_env, new_mark
from tests.support.wait import wait_until


def _sleeper() -> subprocess.Popen:
    """A process as an earlier run leaves it: long past its exec. Popen may return (vfork)
    while the kernel is still setting up the new program, whose command line then reads
    empty, and the record rightly does not take it for the recorded server."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert wait_until(lambda: _cmdline(p.pid)[1:2] == ["-c"], 10)
    return p


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


async def test_orphan_of_an_earlier_run_is_reaped(tmp_path) -> None:
    path = tmp_path / "servers.json"
    orphan = _sleeper()
    try:
        earlier = OwnershipRecord(path, instance="earlier")
        earlier.add(orphan.pid, 8081, "/m/a.gguf", [sys.executable])
        assert json.loads(path.read_text())["servers"][0]["pid"] == orphan.pid
        reaped = await OwnershipRecord(path, instance="now").reap_orphans(grace=5)
        assert [r.entry.pid for r in reaped] == [orphan.pid]
        assert orphan.wait(5) is not None
        assert not path.exists()
    finally:
        orphan.kill()
        orphan.wait()


async def test_reused_pid_is_not_touched(tmp_path) -> None:
    path = tmp_path / "servers.json"
    stranger = _sleeper()
    try:
        rec = OwnershipRecord(path, instance="earlier")
        rec.add(stranger.pid, 8081, "/m/a.gguf", [sys.executable])
        data = json.loads(path.read_text())
        data["servers"][0]["create_time"] -= 3600  # the recorded process started an hour ago
        path.write_text(json.dumps(data))
        assert await OwnershipRecord(path, instance="now").reap_orphans(grace=1) == []
        assert psutil.Process(stranger.pid).is_running()
    finally:
        stranger.kill()
        stranger.wait()


async def test_unreadable_record_is_ignored(tmp_path) -> None:
    path = tmp_path / "servers.json"
    path.write_text("{not json")
    assert await OwnershipRecord(path).reap_orphans() == []


def _marked_group() -> tuple[subprocess.Popen, GroupRef, int]:
    """A wrapper that did not exec (its child is the "server") in a marked group of its
    own, as the manager starts servers; the child's PID."""
    mark = new_mark("server")
    code = (
        "import subprocess,sys,time;"
        "c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
        "print(c.pid,flush=True); time.sleep(60)"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=marked_env(dict(os.environ), mark),
    )
    child = int(p.stdout.readline())
    return p, GroupRef.of(p.pid, mark), child


async def test_a_wrapper_and_its_server_are_reaped_as_one_group(tmp_path) -> None:
    """The wrapper died with the app; its child (llama-server) lives on in the group: the
    next start finds it by the group's mark and stops it."""
    path = tmp_path / "servers.json"
    wrapper, group, child = _marked_group()
    try:
        OwnershipRecord(path, instance="earlier").add(
            wrapper.pid, 8081, "/m/a.gguf", [sys.executable], group
        )
        wrapper.kill()  # what PR_SET_PDEATHSIG does to it when the app dies
        wrapper.wait()
        assert psutil.pid_exists(child)
        (reaped,) = await OwnershipRecord(path, instance="now").reap_orphans(grace=5)
        assert reaped.entry.pid == wrapper.pid and reaped.how == "terminated"
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(child).kill()


async def test_servers_of_a_running_app_are_left_alone(tmp_path) -> None:
    """The record names an app that still runs (not this one): none of its servers is
    reaped, whatever else holds the home."""
    path = tmp_path / "servers.json"
    wrapper, group, child = _marked_group()
    try:
        OwnershipRecord(path, instance="other").add(
            wrapper.pid, 8081, "/m/a.gguf", [sys.executable], group
        )
        data = json.loads(path.read_text())
        parent = psutil.Process(os.getppid())  # a live process that is not this one
        data["servers"][0].update(owner_pid=parent.pid, owner_started=parent.create_time())
        path.write_text(json.dumps(data))
        assert await OwnershipRecord(path, instance="now").reap_orphans(grace=1) == []
        assert wrapper.poll() is None and psutil.pid_exists(child)
    finally:
        wrapper.kill()
        wrapper.wait()
        with contextlib.suppress(psutil.Error):
            psutil.Process(child).kill()


def test_the_record_is_written_whole_without_waiting_for_the_disk(tmp_path, monkeypatch) -> None:
    # A spawn and an exit each write the record, and a switch waits for both: no fsync
    # (the rename keeps it whole when the app dies; after a power loss no server is alive).
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    rec = OwnershipRecord(tmp_path / "servers.json")
    rec.add(os.getpid(), 8080, "/m.gguf", ["llama-server", "--api-key", "k"])
    assert synced == []
    assert [e.pid for e in OwnershipRecord(rec.path).read()] == [os.getpid()]
    assert not list(tmp_path.glob(".servers.json.*"))  # no temp file left behind
    rec.remove(os.getpid())
    assert not rec.path.exists()
