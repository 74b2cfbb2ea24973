"""The record of every server the app started, and the reaping of orphans it left behind.

Each entry holds the pid together with the process start time and command line (with any
API key hidden), so a process that merely reuses a recorded pid is never touched. The file
is rewritten atomically on every change and removed when the last server stops; a process
the record does not name (a llama-server someone else started) is never ended here.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from app.atomic import write_atomic
from app.core.servers.server_log import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnedServer:
    pid: int
    create_time: float
    port: int
    model_path: str
    instance: str
    cmdline: list[str]


@dataclass(frozen=True)
class ReapedServer:
    entry: OwnedServer
    how: str  # "terminated" or "killed"


def _matches(entry: OwnedServer) -> psutil.Process | None:
    """The live process of ``entry``, or None when the pid is gone or now someone else's."""
    try:
        p = psutil.Process(entry.pid)
        if abs(p.create_time() - entry.create_time) > 1.0:
            return None
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        if entry.cmdline and redact(p.cmdline())[: len(entry.cmdline)] != entry.cmdline:
            return None
        return p
    except psutil.Error:
        return None


class OwnershipRecord:
    """A JSON file of the servers this app instance started; rewritten atomically."""

    def __init__(self, path: Path, instance: str | None = None) -> None:
        self.path = path
        self.instance = instance or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._entries: dict[int, OwnedServer] = {}

    def read(self) -> list[OwnedServer]:
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            return [OwnedServer(**e) for e in raw.get("servers", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as e:
            log.warning("Ignoring unreadable server record %s: %s", self.path, e)
            return []

    def _write(self) -> None:
        servers = [asdict(e) for e in self._entries.values()]
        try:
            if servers:
                # no fsync: after a power loss no recorded server is alive, while a spawn
                # and an exit each wait for this write (a switch pays both)
                write_atomic(
                    self.path, json.dumps({"servers": servers}, indent=1), durable=False
                )
            else:
                self.path.unlink(missing_ok=True)
        except OSError as e:
            log.error("Cannot write the server record %s: %s", self.path, e)

    def add(self, pid: int, port: int, model_path: str, cmdline: list[str]) -> None:
        """Record a server this instance started; ``cmdline`` is stored with keys hidden."""
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.Error:
            create_time = time.time()
        self._entries[pid] = OwnedServer(
            pid, create_time, port, model_path, self.instance, redact(list(cmdline))
        )
        self._write()

    def remove(self, pid: int) -> None:
        if self._entries.pop(pid, None) is not None:
            self._write()

    def owns(self, pid: int) -> bool:
        return pid in self._entries

    def entries(self) -> list[OwnedServer]:
        """The servers this instance started and has not seen exit."""
        return list(self._entries.values())

    def reap_orphans(self, grace: float = 10.0) -> list[ReapedServer]:
        """End recorded servers of earlier app runs that are still alive and really ours."""
        reaped: list[ReapedServer] = []
        victims: list[tuple[OwnedServer, psutil.Process]] = []
        for entry in self.read():
            if entry.pid in self._entries:
                continue
            p = _matches(entry)
            if p is None:
                log.info("Recorded server PID %d (port %d) is gone", entry.pid, entry.port)
                continue
            victims.append((entry, p))
        procs = []
        for entry, p in victims:
            tree = [p]
            try:
                tree += p.children(recursive=True)
            except psutil.Error:
                pass
            for q in tree:
                try:
                    q.terminate()
                except psutil.Error:
                    pass
            procs.append((entry, tree))
        all_procs = [q for _, tree in procs for q in tree]
        _, alive = psutil.wait_procs(all_procs, timeout=grace)
        for q in alive:
            try:
                q.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
        alive_pids = {q.pid for q in alive}
        for entry, _tree in procs:
            how = "killed" if entry.pid in alive_pids else "terminated"
            log.warning(
                "Reaped orphaned llama-server PID %d on port %d (%s), left by app instance %s: %s",
                entry.pid,
                entry.port,
                entry.model_path,
                entry.instance,
                how,
            )
            reaped.append(ReapedServer(entry, how))
        self._write()
        return reaped
