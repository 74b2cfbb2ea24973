"""The record of every server the app started, and the reaping of orphans it left behind.

Each entry holds the pid together with the process start time and command line (with any
API key hidden), so a process that merely reuses a recorded pid is never touched; and the
server's process group and the mark in its environment (``app.platform.process_groups``),
so a server started through a wrapper script that does not ``exec`` (the wrapper dies with
the app, llama-server lives on as its child) is found and reaped too. It also names the app
that started it: servers of an app that still runs are never reaped. The file is rewritten
atomically on every change and removed when the last server stops; a process the record
does not name (a llama-server someone else started) is never ended here.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from app.platform.process_groups import GroupRef, GroupStopper, Stopped, describe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnedServer:
    pid: int
    create_time: float
    port: int
    model_path: str
    instance: str
    cmdline: list[str]
    pgid: int | None = None  # its process group (a wrapper's children are in it)
    mark: str = ""  # the mark in its processes' environment
    owner_pid: int = 0  # the app that started it, and that app's start time
    owner_started: float = 0.0

    def group(self) -> GroupRef:
        return GroupRef(leader=0, pgid=self.pgid, mark=self.mark, since=self.create_time)


def _owner_alive(entry: OwnedServer) -> bool:
    """The app that started it still runs (and is not this one): not ours to reap."""
    if not entry.owner_pid or entry.owner_pid == os.getpid():
        return False
    try:
        return abs(psutil.Process(entry.owner_pid).create_time() - entry.owner_started) < 1.0
    except psutil.Error:
        return False


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
                write_atomic(self.path, json.dumps({"servers": servers}, indent=1), durable=False)
            else:
                self.path.unlink(missing_ok=True)
        except OSError as e:
            log.error("Cannot write the server record %s: %s", self.path, e)

    def add(
        self,
        pid: int,
        port: int,
        model_path: str,
        cmdline: list[str],
        group: GroupRef | None = None,
    ) -> None:
        """Record a server this instance started (``group``: its process group and mark);
        ``cmdline`` is stored with keys hidden."""
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.Error:
            create_time = time.time()
        try:
            me = psutil.Process()
            owner, started = me.pid, me.create_time()
        except psutil.Error:
            owner, started = os.getpid(), 0.0
        self._entries[pid] = OwnedServer(
            pid,
            create_time,
            port,
            model_path,
            self.instance,
            redact(list(cmdline)),
            pgid=group.pgid if group else None,
            mark=group.mark if group else "",
            owner_pid=owner,
            owner_started=started,
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

    async def reap_orphans(self, grace: float = 10.0) -> list[ReapedServer]:
        """End recorded servers of earlier app runs that are still alive and really ours:
        each whole group (a wrapper's llama-server too), never a server whose app still
        runs."""
        reaped: list[ReapedServer] = []
        for entry in self.read():
            if entry.pid in self._entries:
                continue
            if _owner_alive(entry):
                log.info(
                    "Recorded server PID %d (port %d) belongs to a running app (PID %d); "
                    "left alone",
                    entry.pid,
                    entry.port,
                    entry.owner_pid,
                )
                continue
            stopped = await self._reap(entry, grace)
            if stopped is None:
                log.info("Recorded server PID %d (port %d) is gone", entry.pid, entry.port)
                continue
            how = "killed" if stopped.killed else "terminated"
            log.warning(
                "Reaped orphaned llama-server PID %d on port %d (%s), left by app instance %s: "
                "%s (%s)",
                entry.pid,
                entry.port,
                entry.model_path,
                entry.instance,
                how,
                ", ".join(stopped.found),
            )
            reaped.append(ReapedServer(entry, how))
        self._write()
        return reaped

    async def _reap(self, entry: OwnedServer, grace: float) -> Stopped | None:
        """Stop what is left of ``entry`` (None when nothing is)."""
        if entry.mark:  # its group: found by the mark in its environment
            stopped = await GroupStopper(entry.group(), trust_group=False).stop(grace)
            return stopped if stopped.count else None
        # a record of an older version: the recorded process and its children
        p = _matches(entry)
        if p is None:
            return None
        loop = asyncio.get_running_loop()
        tree = [p]
        with contextlib.suppress(psutil.Error):
            tree += p.children(recursive=True)
        for q in tree:
            with contextlib.suppress(psutil.Error):
                q.terminate()
        _, alive = await loop.run_in_executor(None, lambda: psutil.wait_procs(tree, timeout=grace))
        for q in alive:
            with contextlib.suppress(psutil.Error):
                q.kill()
        await loop.run_in_executor(None, lambda: psutil.wait_procs(alive, timeout=5))
        names = tuple(describe([q]) for q in tree)
        return Stopped(found=names, killed=tuple(describe([q]) for q in alive))
