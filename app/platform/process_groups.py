"""A group of processes the app started (a run, a server), found again and stopped whole.

The app starts each run and each server as the leader of a process group of its own (a new
session on POSIX) and puts a mark in its environment (``FAMILYLOG_TRAY_MARK=<mark>``), which
its children inherit. The group's members are then every live process that

- is in its process group (POSIX), or
- carries its mark, so a grandchild that moved to a group of its own (``setsid``, a
  daemon) is still found, as long as it kept its environment (almost every program does);

and was started no earlier than the leader (a reused PID or group id is never taken for a
member). This works while the leader lives, after it exited (``uv`` exits, ``python`` runs
on), and after the app itself died: the record of the group (``GroupRef``) is all that is
needed, so the next start reaps what a crash left.

Stopping a group (``stop_group``): SIGTERM to every member (and SIGCONT, so a stopped one
can act on it), SIGKILL to what is left after the grace period, bounded waits throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import psutil

from app.platform.proc_stat import LINUX_PROC, boot_ticks, started_before, started_since

log = logging.getLogger(__name__)
T = TypeVar("T")

MARK_VAR = "FAMILYLOG_TRAY_MARK"
POLL = 0.02  # seconds between looks while waiting for members to exit
KILL_WAIT = 1.0  # how long SIGKILLed members get to vanish
START_SLACK = 1.0  # create times are rounded; a member may look this much older


def new_mark(kind: str) -> str:
    """A mark no other group carries: ``<kind>-<app pid>-<random>``."""
    return f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def marked_env(env: dict[str, str], mark: str) -> dict[str, str]:
    return {**env, MARK_VAR: mark}


@dataclass(frozen=True)
class GroupRef:
    """What finds a group again: its leader, its process group id (None on Windows), the
    mark in its members' environment and the leader's start time (``time.time()``)."""

    leader: int
    pgid: int | None
    mark: str
    since: float

    @classmethod
    def of(cls, pid: int, mark: str) -> GroupRef:
        """The group whose leader ``pid`` was just started (its own process group on POSIX)."""
        try:
            since = psutil.Process(pid).create_time()
        except psutil.Error:
            since = time.time()
        return cls(pid, pid if os.name == "posix" else None, mark, since)


def _pgid(pid: int) -> int | None:
    getpgid = getattr(os, "getpgid", None)
    if getpgid is None:
        return None
    try:
        return getpgid(pid)
    except OSError:
        return None


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def mark_of(p: psutil.Process) -> str | None:
    """The mark in a process's environment (None: none, or it cannot be read)."""
    try:
        return p.environ().get(MARK_VAR)
    except (psutil.Error, OSError):
        return None


def _is_member(p: psutil.Process, ref: GroupRef, trust_group: bool) -> bool:
    try:
        if p.create_time() < ref.since - START_SLACK:
            return False  # older than the leader: a reused id, not ours
    except psutil.Error:
        return False
    if trust_group and ref.pgid is not None and _pgid(p.pid) == ref.pgid:
        return True
    return mark_of(p) == ref.mark


def members(
    ref: GroupRef, *, exclude: Iterable[int] = (), trust_group: bool = True
) -> list[psutil.Process]:
    """The live members of the group (the leader too while it lives), not ``exclude``.

    ``trust_group``: a process in the group's process group is a member even without the
    mark (one that cleared its environment). True while the app has watched the group all
    along: a group id is not reused while any process is in the group. False for a group
    recorded before the app died (days ago, maybe): then only the mark counts."""
    skip = {os.getpid(), *exclude}
    found = []
    for pid in started_since(ref.since - START_SLACK):
        if pid in skip:
            continue
        try:
            p = psutil.Process(pid)
        except psutil.Error:
            continue
        if _is_member(p, ref, trust_group) and _alive(p):
            found.append(p)
    return found


def describe(procs: Iterable[psutil.Process]) -> str:
    """ "sleep (PID 12), python (PID 13)" for a log line or a record."""
    parts = []
    for p in procs:
        try:
            name = p.name()
        except psutil.Error:
            name = "?"
        parts.append(f"{name} (PID {p.pid})")
    return ", ".join(parts)


def _send(procs: Iterable[psutil.Process], sig: int) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error, OSError):
            p.send_signal(sig)  # psutil checks the PID was not reused meanwhile


def signal_group(pgid: int | None, sig: int, procs: Iterable[psutil.Process] = ()) -> None:
    """Send ``sig`` to the process group ``pgid`` (while it has members; None: none) and to
    those of ``procs`` outside it (members that left it), once each: a second SIGTERM makes
    some programs (llama-server) abort instead of shutting down. After SIGTERM also SIGCONT,
    so a stopped process handles it."""
    follow = [sig, signal.SIGCONT] if sig == signal.SIGTERM and os.name == "posix" else [sig]
    outside = [p for p in procs if pgid is None or _pgid(p.pid) != pgid]
    for s in follow:
        if pgid is not None:
            with contextlib.suppress(OSError):
                os.killpg(pgid, s)
        _send(outside, s)


def reap_zombies(procs: Iterable[psutil.Process], leader: int | None = None) -> None:
    """Collect the exit status of members that are the app's children (orphans handed to
    it as subreaper): never the leader, whose exit asyncio waits for itself."""
    me = os.getpid()
    for p in procs:
        if p.pid == leader:
            continue
        try:
            if p.ppid() == me and p.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(p.pid, os.WNOHANG)
        except (psutil.Error, OSError):
            pass


@dataclass(frozen=True)
class Stopped:
    """What stopping a group found: the members (in words) and whether SIGKILL was needed."""

    found: tuple[str, ...] = ()
    killed: tuple[str, ...] = ()  # still there after the grace period: SIGKILLed
    survivors: tuple[str, ...] = ()  # not gone even after SIGKILL (uninterruptible sleep)
    leader_killed: bool = False  # the leader outlived the grace period: SIGKILLed

    @property
    def count(self) -> int:
        return len(self.found)

    def words(self) -> str:
        """ "left 1 process behind; stopped it" (empty when there was none)."""
        n = self.count
        if not n:
            return ""
        what = f"left {n} process{'es' if n != 1 else ''} behind ({', '.join(self.found)})"
        it = "it" if n == 1 else "them"
        how = f"stopped {it}"
        if self.killed:
            how += f" (SIGKILL after the grace period: {', '.join(self.killed)})"
        if self.survivors:
            how += f"; still running after SIGKILL: {', '.join(self.survivors)}"
        return f"{what}; {how}"


class StopClock(Protocol):
    """The time a stop's grace period is measured on (the app's clock seam, ``Clock``;
    a test's hand-moved one): its now, and an await bounded by it."""

    def monotonic(self) -> float: ...

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T: ...


class _LoopClock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        return await asyncio.wait_for(aw, timeout)


async def _wait_gone(
    procs: list[psutil.Process],
    until: float,
    leader: int | None,
    leader_exited: asyncio.Future | None,
    clock: StopClock,
) -> list[psutil.Process]:
    """Wait until ``procs`` have exited and the leader too (``leader_exited``), or the
    ``clock``'s time ``until``; the ones still alive."""

    async def gone() -> None:
        while True:
            reap_zombies(procs, leader)
            if any(_alive(p) for p in procs):
                await asyncio.sleep(POLL)
            elif leader_exited is None or leader_exited.done():
                return
            else:
                await asyncio.wait({leader_exited})  # woken by the exit itself

    left = until - clock.monotonic()
    if left > 0:
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(gone(), left)
    reap_zombies(procs, leader)
    return [p for p in procs if _alive(p)]


class GroupStopper:
    """Stops every member of one group: SIGTERM, then SIGKILL after the grace period.

    ``stop`` may be called more than once (a cancel while the leader runs, then the sweep
    after it exited): a process gets SIGTERM once (a second one makes some programs,
    llama-server among them, abort instead of shutting down), and what was found is
    reported together. ``exclude``: PIDs that belong to someone else."""

    def __init__(
        self,
        ref: GroupRef,
        *,
        exclude: Callable[[], Iterable[int]] = tuple,
        trust_group: bool = True,
        clock: StopClock | None = None,
    ) -> None:
        self.ref = ref
        self._clock = clock or _LoopClock()
        self._exclude = exclude
        self._trust_group = trust_group
        # the whole process group is signalled only when it is known to be the group's
        self._pgid = ref.pgid if trust_group else None
        self._termed: set[int] = set()
        self._group_termed = False
        self._found: dict[int, str] = {}
        self._killed: dict[int, str] = {}
        self._survivors: dict[int, str] = {}
        self._leader_killed = False

    def result(self) -> Stopped:
        return Stopped(
            found=tuple(self._found.values()),
            killed=tuple(self._killed.values()),
            survivors=tuple(self._survivors.values()),
            leader_killed=self._leader_killed,
        )

    async def _scan(self) -> list[psutil.Process]:
        loop = asyncio.get_running_loop()
        exclude = set(self._exclude())
        found = await loop.run_in_executor(
            None, lambda: members(self.ref, exclude=exclude, trust_group=self._trust_group)
        )
        for p in found:
            if p.pid != self.ref.leader:
                self._found.setdefault(p.pid, describe([p]))
        return found

    def _term(self, procs: list[psutil.Process]) -> None:
        fresh = [p for p in procs if p.pid not in self._termed]
        if self._group_termed and not fresh:
            return
        pgid = None if self._group_termed else self._pgid
        signal_group(pgid, signal.SIGTERM, fresh)
        self._group_termed = True
        self._termed |= {p.pid for p in fresh}

    def _term_group_first(self, leader_exited: asyncio.Future | None) -> int | None:
        """On Linux, while the leader lives (its process group is then the group's), signal
        the group at once and look for members that left it while they exit: a switch
        waits for the stop, and a look at the process table takes milliseconds. When it
        was signalled (``boot_ticks``); None when it was not (look first)."""
        if (
            not LINUX_PROC
            or self._pgid is None
            or self._group_termed
            or leader_exited is None
            or leader_exited.done()
        ):
            return None
        signalled = boot_ticks()
        signal_group(self._pgid, signal.SIGTERM)
        self._group_termed = True
        return signalled

    async def stop(self, grace: float, leader_exited: asyncio.Future | None = None) -> Stopped:
        """Stop the members (and the leader, when ``leader_exited`` is not done yet: the
        leader's exit as asyncio sees it; the leader is never reaped here). Returns within
        ``grace`` + ``KILL_WAIT`` seconds plus two looks at the process table."""
        clock = self._clock
        deadline = clock.monotonic() + grace
        leader = self.ref.leader
        signalled = self._term_group_first(leader_exited)
        found = await self._scan()
        if signalled is not None:
            # the group's signal reached who was in it then, not who started since: those
            # get theirs below (one that started in the same instant may get two)
            self._termed |= {
                p.pid
                for p in found
                if _pgid(p.pid) == self._pgid
                and (p.pid == leader or started_before(p.pid, signalled))
            }
        waiting = leader_exited is not None and not leader_exited.done()
        if not found and not waiting:
            return self.result()
        self._term(found)
        others = [p for p in found if p.pid != leader]
        alive = await _wait_gone(others, deadline, leader, leader_exited, clock)
        # anyone who joined meanwhile (a child forked while its parent was stopping)
        later = [p for p in await self._scan() if p.pid not in {q.pid for q in found}]
        if later and clock.monotonic() < deadline:
            self._term(later)
            alive += await _wait_gone(later, deadline, leader, leader_exited, clock)
        else:
            alive += later
        alive = [p for p in alive if _alive(p)]
        waiting = leader_exited is not None and not leader_exited.done()
        if not alive and not waiting:
            return self.result()
        for p in alive:
            self._killed.setdefault(p.pid, describe([p]))
        lead = [p for p in found if p.pid == leader and waiting]  # no group on Windows
        self._leader_killed = self._leader_killed or waiting
        signal_group(self._pgid, signal.SIGKILL, alive + lead)
        end = clock.monotonic() + KILL_WAIT
        rest = await _wait_gone(alive, end, leader, leader_exited, clock)
        for p in rest:
            self._survivors.setdefault(p.pid, describe([p]))
        return self.result()
