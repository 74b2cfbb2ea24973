"""The ownership record: orphans of an earlier run are reaped, strangers are never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil

from app.core.servers.ownership import OwnershipRecord
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


def test_orphan_of_an_earlier_run_is_reaped(tmp_path) -> None:
    path = tmp_path / "servers.json"
    orphan = _sleeper()
    try:
        earlier = OwnershipRecord(path, instance="earlier")
        earlier.add(orphan.pid, 8081, "/m/a.gguf", [sys.executable])
        assert json.loads(path.read_text())["servers"][0]["pid"] == orphan.pid
        reaped = OwnershipRecord(path, instance="now").reap_orphans(grace=5)
        assert [r.entry.pid for r in reaped] == [orphan.pid]
        assert orphan.wait(5) is not None
        assert not path.exists()
    finally:
        orphan.kill()
        orphan.wait()


def test_reused_pid_is_not_touched(tmp_path) -> None:
    path = tmp_path / "servers.json"
    stranger = _sleeper()
    try:
        rec = OwnershipRecord(path, instance="earlier")
        rec.add(stranger.pid, 8081, "/m/a.gguf", [sys.executable])
        data = json.loads(path.read_text())
        data["servers"][0]["create_time"] -= 3600  # the recorded process started an hour ago
        path.write_text(json.dumps(data))
        assert OwnershipRecord(path, instance="now").reap_orphans(grace=1) == []
        assert psutil.Process(stranger.pid).is_running()
    finally:
        stranger.kill()
        stranger.wait()


def test_unreadable_record_is_ignored(tmp_path) -> None:
    path = tmp_path / "servers.json"
    path.write_text("{not json")
    assert OwnershipRecord(path).reap_orphans() == []


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
