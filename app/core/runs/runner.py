"""One FamilyLog run at a time: prepare the models, run the command, record the outcome.

The command (``FAMILYLOG_COMMAND``, split with shlex, no shell) runs in ``FAMILYLOG_DIR``
as the leader of a process group of its own, with the run's mark in its environment
(``app.platform.process_groups``). Its stdout and stderr (one pipe, so their order is kept)
go line by line to ``runs/<start time>.log`` and to the output subscribers, in batches.

A run ends when its main process ends, not when the last holder of its output pipe lets go:
whatever the run left behind (``cmd &``, ``uv``'s child, a daemon that moved to a group of
its own but kept the mark) is then stopped, SIGTERM then SIGKILL after the grace period
(``STOP_GRACE_SECONDS``), and the record says so. Cancel, the run timeout and the app's
quit stop the whole group the same way, so each ends within the grace period and a second.

The run is in the history from its start (outcome "running", with what finds its
processes again), so a run the app's death interrupted is found and reaped at the next
start (``recover``). Every run, even one that could not start, ends with a history entry,
a notice and the state back at idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path

from app.core.clock import Clock, SystemClock
from app.core.events import Listeners
from app.core.notices import Level, Notice
from app.core.runs.child import spawn
from app.core.runs.command import COMMAND_NOT_FOUND, CommandNotFoundError, resolve_command
from app.core.runs.deps import RunDeps
from app.core.runs.history import RunHistory
from app.core.runs.output import RunOutput, new_log_file, pump
from app.core.runs.preload import ModelPlacement, Prepared, PrepareError
from app.core.runs.records import (
    Outcome,
    RunProcesses,
    RunRecord,
    RunState,
    RunStatus,
    StartResult,
    format_duration,
)
from app.core.runs.report import run_notice
from app.platform.process_groups import GroupRef, GroupStopper, Stopped, marked_env, new_mark
from app.platform.processes import ProcessPlatform, process_platform
from app.platform.subreaper import Subreaper

log = logging.getLogger(__name__)

IN_PROGRESS = "A FamilyLog run is already in progress"


class FamilyLogRunner:
    def __init__(
        self,
        deps: RunDeps,
        history: RunHistory,
        *,
        platform: ProcessPlatform | None = None,
        kill_after: float | None = None,
        drain_timeout: float = 5.0,
        base_env: dict[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``kill_after``: the grace period between SIGTERM and SIGKILL (None: the setting
        ``STOP_GRACE_SECONDS`` in force); ``drain_timeout``: how long output is read after
        the run's processes are gone (a process outside the run may hold its pipe)."""
        self.deps = deps
        self.history = history
        self.placement = ModelPlacement(deps, base_env)
        self._platform = platform or process_platform()
        self._kill_after = kill_after
        self._clock = clock or SystemClock()
        self._drain_timeout = drain_timeout
        self._status = RunStatus()
        self._output: Listeners[list[str]] = Listeners("run output")
        self._states: Listeners[RunStatus] = Listeners("run states")
        self._task: asyncio.Task[RunRecord] | None = None
        self._prep_task: asyncio.Task[Prepared] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._exited: asyncio.Future[None] | None = None  # the main process's exit
        self._stopper: GroupStopper | None = None  # stops the run's process group
        self._stop_reason: Outcome | None = None
        self._escalation: asyncio.Task[Stopped] | None = None
        self._familylog_logs: Path | None = None
        self._record: RunRecord | None = None  # the run's entry in the history

    @property
    def settings(self):
        return self.deps.settings()

    @property
    def grace(self) -> float:
        """Seconds between SIGTERM and SIGKILL when the run's processes are stopped."""
        return (
            self._kill_after if self._kill_after is not None else self.settings.STOP_GRACE_SECONDS
        )

    # ── What the tray and the log window use ─────────────────────────────────
    def status(self) -> RunStatus:
        return self._status

    def subscribe_output(self, cb: Callable[[list[str]], object]) -> Callable[[], None]:
        """``cb(lines)`` gets each batch of output lines (a list) of every run."""
        return self._output.add(cb)

    def subscribe_state(self, cb: Callable[[RunStatus], object]) -> Callable[[], None]:
        """``cb(RunStatus)`` on every state change (not on every line: poll ``status()``)."""
        return self._states.add(cb)

    def familylog_server_logs(self) -> list[Path]:
        """FamilyLog's ``logs/llama-server-*.log`` while a run that manages models lasts."""
        if self._familylog_logs is None or not self._status.busy:
            return []
        return sorted(self._familylog_logs.glob("llama-server-*.log"))

    def start(self, trigger: str = "manual") -> StartResult:
        """Start a run now; a second start during a run starts nothing and says why."""
        if self._status.busy:
            st = self._status
            return StartResult(False, f"{IN_PROGRESS} ({st.state}, {st.elapsed_text}).")
        started = time.time()
        log_file = new_log_file(self.deps.runs_dir, started)
        self._stop_reason = None
        self._set(
            RunStatus(
                state=RunState.PREPARING,
                trigger=trigger,
                started_at=started,
                started_mono=self._clock.monotonic(),
                log_file=log_file,
                clock=self._clock.monotonic,
            )
        )
        self._record = RunRecord(
            started_at=started,
            duration_s=0.0,
            outcome=Outcome.RUNNING,
            log_file=str(log_file),
            trigger=trigger,
        )
        self.history.add(self._record)  # in the history from its start: a crash cannot lose it
        self._task = asyncio.create_task(self._run(trigger, started, log_file), name="familylog")
        return StartResult(
            True, f"FamilyLog run started; its output goes to {log_file}", self._task
        )

    def cancel(self) -> bool:
        """Stop the run in progress (recorded as cancelled); False when there is none."""
        return self._stop(Outcome.CANCELLED)

    async def wait(self) -> RunRecord | None:
        task = self._task
        if task is None:
            return None
        with contextlib.suppress(asyncio.CancelledError):
            return await asyncio.shield(task)
        return None

    async def close(self) -> None:
        """The app is quitting: cancel a run in progress and wait until it is recorded."""
        if self._status.busy:
            self.cancel()
            await self.wait()

    # ── The run ───────────────────────────────────────────────────────────────
    async def _run(self, trigger: str, started: float, log_file: Path) -> RunRecord:
        t0 = self._clock.monotonic()
        out = RunOutput(log_file, self._output.emit, on_last_line=self._last_line)
        prepared: Prepared | None = None
        outcome, code, message = Outcome.NOT_STARTED, None, ""
        try:
            when = dt.datetime.fromtimestamp(started).isoformat(sep=" ", timespec="seconds")
            out.note(f"FamilyLog run ({trigger}) started {when}")
            cwd, argv = resolve_command(self.settings, self.placement.child_env().get("PATH"))
            out.note(f"Folder: {cwd}\nCommand: {' '.join(argv)}")
            self._prep_task = asyncio.create_task(self.placement.prepare(out.note))
            try:
                prepared = await self._prep_task
            finally:
                self._prep_task = None
            self._familylog_logs = prepared.familylog_logs
            code, left = await self._execute(cwd, argv, prepared.env, out)
            outcome = self._stop_reason or (Outcome.SUCCEEDED if code == 0 else Outcome.FAILED)
            words = [f"exit code {code}"] if outcome is Outcome.FAILED else []
            if left.count and outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
                words.append(left.words())  # a cancel stops them all: no news
            message = "; ".join(words)
        except CommandNotFoundError as e:
            message, code = str(e), COMMAND_NOT_FOUND
        except PrepareError as e:
            message = str(e)
        except asyncio.CancelledError:
            if self._stop_reason is None:  # the task itself was cancelled: the app quits
                self._stop_reason = outcome = Outcome.CANCELLED
                await asyncio.shield(self._stop_group())
                raise
            outcome = self._stop_reason
        except Exception as e:  # never leave the run stuck on an unexpected error
            log.exception("The FamilyLog run failed unexpectedly")
            message = f"{type(e).__name__}: {e}"
            outcome = self._stop_reason or Outcome.FAILED
        finally:
            record = await asyncio.shield(
                self._finish(trigger, started, t0, outcome, code, message, out, prepared)
            )
        return record

    async def _execute(
        self, cwd: Path, argv: list[str], env: dict, out: RunOutput
    ) -> tuple[int, Stopped]:
        """Run the command until its main process exits, then stop what it left behind;
        its exit code and what was left."""
        if self._stop_reason is not None:
            raise asyncio.CancelledError
        mark = new_mark("run")
        with Subreaper():  # Linux: the run's orphans come to the app, not to init
            try:
                proc, exited = await spawn(
                    argv, cwd=cwd, env=marked_env(env, mark), **self._platform.spawn_kwargs()
                )
            except OSError as e:
                raise PrepareError(
                    f"Cannot start {argv[0]}: {e.strerror or e}. Check FAMILYLOG_COMMAND."
                ) from e
            adopt = getattr(self._platform, "adopt", None)
            if adopt is not None:
                adopt(proc.pid)  # Windows: into the job that dies with the app
            group = GroupRef.of(proc.pid, mark)
            self._proc, self._exited = proc, exited
            self._stopper = GroupStopper(group, exclude=self._server_pids, clock=self._clock)
            self._remember(group)
            if self._stop_reason is not None:  # cancelled while the process was being spawned
                self._escalate()
            self._set(dataclasses.replace(self._status, state=RunState.RUNNING, pid=proc.pid))
            log.info("FamilyLog run started: PID %d, %s", proc.pid, " ".join(argv))
            limit = self.settings.RUN_TIMEOUT_MINUTES * 60
            timer = asyncio.get_running_loop().call_later(limit, self._stop, Outcome.TIMED_OUT)
            assert proc.stdout is not None
            reader = asyncio.create_task(pump(proc.stdout, out))
            try:
                await asyncio.shield(exited)  # the main process, not the last pipe holder
                code = proc.returncode
                assert code is not None
                if self._escalation is not None:
                    await asyncio.shield(self._escalation)
                left = await asyncio.shield(self._stopper.stop(self.grace))
                if left.count:
                    log.warning("The FamilyLog run %s", left.words())
                    out.note(f"The run {left.words()}.")
                # its processes are gone: what they wrote is still to be read
                done, _ = await asyncio.wait({reader}, timeout=self._drain_timeout)
                if not done:
                    out.note(
                        "A process outside the run still holds its output; stopped reading it."
                    )
            finally:
                timer.cancel()
                if not reader.done():
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
        return code, left

    def _server_pids(self) -> set[int]:
        """The app's own servers: never part of a run, whatever their environment says."""
        return {st.pid for st in self.deps.lifecycle.manager.statuses().values() if st.pid}

    def _remember(self, group: GroupRef) -> None:
        """Write what finds the run's processes again into its history entry."""
        if self._record is None:
            return
        self._record = self._record.model_copy(update={"processes": RunProcesses.of(group)})
        self.history.add(self._record)

    def _stop(self, reason: Outcome) -> bool:
        if not self._status.busy or self._status.state is RunState.FINISHING:
            return False
        if self._stop_reason is None:
            self._stop_reason = reason
        if self._prep_task is not None:
            self._prep_task.cancel()
        self._escalate()
        # Before the spawn, _execute sees the reason and does not start the command.
        return True

    def _escalate(self) -> None:
        """Start stopping the run's process group (once), while its main process runs."""
        if self._stopper is None or self._exited is None or self._exited.done():
            return  # not spawned yet, or already ended: the sweep after its exit stops the rest
        if self._escalation is None:
            log.info(
                "Stopping the FamilyLog run (PID %d): %s",
                self._stopper.ref.leader,
                self._stop_reason,
            )
            self._escalation = asyncio.create_task(self._stop_group())

    async def _stop_group(self) -> Stopped:
        """SIGTERM to the run's processes; SIGKILL after the grace period."""
        if self._stopper is None:
            return Stopped()
        stopped = await self._stopper.stop(self.grace, self._exited)
        if stopped.killed or (self._proc is not None and self._proc.returncode == -9):
            log.warning(
                "The run did not exit %g s after SIGTERM; killed it%s",
                self.grace,
                f" ({', '.join(stopped.killed)})" if stopped.killed else "",
            )
        return stopped

    async def _finish(
        self,
        trigger: str,
        started: float,
        t0: float,
        outcome: Outcome,
        code: int | None,
        message: str,
        out: RunOutput,
        prepared: Prepared | None,
    ) -> RunRecord:
        self._set(dataclasses.replace(self._status, state=RunState.FINISHING))
        try:
            if self._escalation is not None:
                with contextlib.suppress(Exception):
                    await self._escalation
            duration = self._clock.monotonic() - t0
            if message and outcome is Outcome.NOT_STARTED:
                out.note(message)
            summary = f"Run {outcome} after {format_duration(duration)}" + (
                f", exit code {code}" if code is not None else ""
            )
            out.note(summary)
            out.flush()
            record = RunRecord(
                started_at=started,
                duration_s=round(duration, 3),
                outcome=outcome,
                exit_code=code,
                log_file=str(out.log_file),
                trigger=trigger,
                message=message,
            )
            self.history.add(record)  # replaces the entry written at the start
            limit = self.settings.RUN_TIMEOUT_MINUTES
            self.deps.notices.emit(run_notice(record, list(out.tail), out.write_error, limit))
            try:
                problems = await self.placement.finish(prepared, out.note)
            except Exception as e:
                log.exception("AFTER_RUN failed")
                problems = [f"AFTER_RUN={self.settings.AFTER_RUN} failed: {e}"]
            if problems:
                self.deps.notices.emit(
                    Notice(
                        Level.WARNING,
                        "Models not restored after the FamilyLog run",
                        "\n".join(problems),
                        out.log_file,
                    )
                )
            return record
        finally:
            out.close()
            self._proc = self._exited = self._stopper = None
            self._escalation = None
            self._familylog_logs = None
            self._record = None
            self._set(RunStatus(last_line=self._status.last_line, log_file=out.log_file))

    # ── Helpers ───────────────────────────────────────────────────────────────
    def _last_line(self, line: str) -> None:
        self._status = dataclasses.replace(self._status, last_line=line[:300])

    def _set(self, status: RunStatus) -> None:
        old = self._status.state
        self._status = status
        if old is not status.state:
            log.info("FamilyLog run: %s -> %s", old, status.state)
        self._states.emit(status)
