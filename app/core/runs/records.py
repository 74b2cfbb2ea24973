"""The state of a FamilyLog run and the record each run leaves in the history: written when
it starts (outcome "running", with what finds its processes again), completed when it ends."""

from __future__ import annotations

import asyncio
import enum
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pydantic import BaseModel

from app.platform.process_groups import GroupRef


class RunState(enum.StrEnum):
    IDLE = "idle"
    PREPARING = "preparing"  # checking the folder, placing the models
    RUNNING = "running"  # the child process is alive
    FINISHING = "finishing"  # output drained, AFTER_RUN, history, notice


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # exited with a non-zero code
    CANCELLED = "cancelled"
    TIMED_OUT = "timed out"
    NOT_STARTED = "not started"  # bad folder, command not found, a preload failed
    RUNNING = "running"  # in progress (the record written when it starts)
    INTERRUPTED = "interrupted"  # the app died during it; the next start reaped what was left

    @property
    def ok(self) -> bool:
        return self is Outcome.SUCCEEDED


class RunProcesses(BaseModel):
    """What finds a run's processes again after the app died: its main process (PID and
    start time), its process group, the mark in its environment, and the app that ran it."""

    pid: int
    pgid: int | None
    mark: str
    since: float  # the main process's start time (time.time())
    app_pid: int
    app_started: float  # the app's start time: a PID reused by another program is not it

    @classmethod
    def of(cls, group: GroupRef) -> RunProcesses:
        """The run's ``group``, started by this app (its PID and start time)."""
        try:
            me = psutil.Process()
            app_pid, app_started = me.pid, me.create_time()
        except psutil.Error:
            app_pid, app_started = os.getpid(), 0.0
        return cls(
            pid=group.leader,
            pgid=group.pgid,
            mark=group.mark,
            since=group.since,
            app_pid=app_pid,
            app_started=app_started,
        )


class RunRecord(BaseModel):
    """One run, as kept in the history file (``outcome`` "running" while it lasts)."""

    started_at: float  # time.time()
    duration_s: float
    outcome: Outcome
    exit_code: int | None = None
    log_file: str
    trigger: str = "manual"  # manual, schedule, catch-up, command line
    message: str = ""  # why it failed, in words; what it left behind
    processes: RunProcesses | None = None  # while it runs: what finds its processes again

    @property
    def log_path(self) -> Path:
        return Path(self.log_file)

    def cli_exit_code(self) -> int:
        """What ``--process-now`` returns: the run's exit code, or a shell-style code."""
        if self.outcome is Outcome.TIMED_OUT:
            return 124  # like timeout(1)
        if self.outcome in (Outcome.CANCELLED, Outcome.INTERRUPTED):
            return 130
        if self.exit_code is not None:
            return self.exit_code if self.exit_code >= 0 else 128 - self.exit_code
        return 1  # not started: a bad folder, a model file missing, a preload that failed


@dataclass(frozen=True)
class RunStatus:
    """A snapshot for the tray: the state, how long it has run and the last line printed."""

    state: RunState = RunState.IDLE
    trigger: str = ""
    started_at: float | None = None  # time.time()
    started_mono: float | None = None
    last_line: str = ""
    log_file: Path | None = None
    pid: int | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @property
    def busy(self) -> bool:
        return self.state is not RunState.IDLE

    @property
    def elapsed(self) -> float:
        if self.started_mono is None or not self.busy:
            return 0.0
        return max(0.0, self.clock() - self.started_mono)

    @property
    def elapsed_text(self) -> str:
        """``mm:ss`` (``h:mm:ss`` past an hour) for "Processing… (mm:ss)"."""
        return format_duration(self.elapsed)


@dataclass
class StartResult:
    """The answer to "Process now": started, or why not (a run is already in progress)."""

    started: bool
    message: str
    task: asyncio.Task[RunRecord] | None = field(default=None, repr=False)

    async def wait(self) -> RunRecord | None:
        return await self.task if self.task is not None else None


def format_duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
