"""One FamilyLog run at a time: prepare the models, run the command, record the outcome.

The command (``FAMILYLOG_COMMAND``, split with shlex, no shell) runs in ``FAMILYLOG_DIR``
in its own process group. Its stdout and stderr (one pipe, so their order is kept) go line
by line to ``runs/<start time>.log`` and to the output subscribers, in batches. Cancel and
timeout send SIGTERM to the group and SIGKILL after ``kill_after`` seconds. Every run, even
one that could not start, ends with a history entry, a notice and the state back at idle.
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
from app.core.runs.command import COMMAND_NOT_FOUND, CommandNotFoundError, resolve_command
from app.core.runs.deps import RunDeps
from app.core.runs.history import RunHistory
from app.core.runs.output import RunOutput, pump
from app.core.runs.preload import ModelPlacement, Prepared, PrepareError
from app.core.runs.records import (
    Outcome,
    RunRecord,
    RunState,
    RunStatus,
    StartResult,
    format_duration,
)
from app.core.runs.report import run_notice
from app.platform.processes import ProcessPlatform, process_platform

log = logging.getLogger(__name__)

IN_PROGRESS = "A FamilyLog run is already in progress"


class FamilyLogRunner:
    def __init__(
        self,
        deps: RunDeps,
        history: RunHistory,
        *,
        platform: ProcessPlatform | None = None,
        kill_after: float = 10.0,
        drain_timeout: float = 5.0,
        base_env: dict[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
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
        self._stop_reason: Outcome | None = None
        self._escalation: asyncio.Task[None] | None = None
        self._familylog_logs: Path | None = None

    @property
    def settings(self):
        return self.deps.settings()

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
        log_file = self._new_log_file(started)
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
            code = await self._execute(cwd, argv, prepared.env, out)
            outcome = self._stop_reason or (Outcome.SUCCEEDED if code == 0 else Outcome.FAILED)
            if outcome is Outcome.FAILED:
                message = f"exit code {code}"
        except CommandNotFoundError as e:
            message, code = str(e), COMMAND_NOT_FOUND
        except PrepareError as e:
            message = str(e)
        except asyncio.CancelledError:
            if self._stop_reason is None:  # the task itself was cancelled: the app quits
                self._stop_reason = outcome = Outcome.CANCELLED
                await asyncio.shield(self._stop_process())
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

    async def _execute(self, cwd: Path, argv: list[str], env: dict, out: RunOutput) -> int:
        if self._stop_reason is not None:
            raise asyncio.CancelledError
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                **self._platform.spawn_kwargs(),
            )
        except OSError as e:
            raise PrepareError(
                f"Cannot start {argv[0]}: {e.strerror or e}. Check FAMILYLOG_COMMAND."
            ) from e
        self._proc = proc
        if self._stop_reason is not None:  # cancelled while the process was being spawned
            self._escalation = asyncio.create_task(self._stop_process())
        self._set(dataclasses.replace(self._status, state=RunState.RUNNING, pid=proc.pid))
        log.info("FamilyLog run started: PID %d, %s", proc.pid, " ".join(argv))
        limit = self.settings.RUN_TIMEOUT_MINUTES * 60
        timer = asyncio.get_running_loop().call_later(limit, self._stop, Outcome.TIMED_OUT)
        assert proc.stdout is not None
        reader = asyncio.create_task(pump(proc.stdout, out))
        try:
            code = await proc.wait()
            done, _ = await asyncio.wait({reader}, timeout=self._drain_timeout)
            if not done:
                out.note(
                    "The run exited but a process it started still holds its output; "
                    "stopped reading it."
                )
        finally:
            timer.cancel()
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        return code

    def _stop(self, reason: Outcome) -> bool:
        if not self._status.busy or self._status.state is RunState.FINISHING:
            return False
        if self._stop_reason is None:
            self._stop_reason = reason
        if self._prep_task is not None:
            self._prep_task.cancel()
        if self._proc is not None and self._proc.returncode is None and self._escalation is None:
            self._escalation = asyncio.create_task(self._stop_process())
        # Before the spawn, _execute sees the reason and does not start the command.
        return True

    async def _stop_process(self) -> None:
        """SIGTERM to the run's process group; SIGKILL after ``kill_after`` seconds."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        log.info("Stopping the FamilyLog run (PID %d): %s", proc.pid, self._stop_reason)
        self._platform.terminate_tree(proc.pid)
        try:
            await self._clock.wait_for(asyncio.shield(proc.wait()), self._kill_after)
        except TimeoutError:
            log.warning("The run did not exit %g s after SIGTERM; killing it", self._kill_after)
            self._platform.kill_tree(proc.pid)
            await proc.wait()

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
            self.history.add(record)
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
            self._proc = None
            self._escalation = None
            self._familylog_logs = None
            self._set(RunStatus(last_line=self._status.last_line, log_file=out.log_file))

    # ── Helpers ───────────────────────────────────────────────────────────────
    def _new_log_file(self, started: float) -> Path:
        runs = self.deps.runs_dir
        stem = dt.datetime.fromtimestamp(started).strftime("%Y-%m-%d_%H-%M-%S")
        path, n = runs / f"{stem}.log", 1
        while path.exists():
            n += 1
            path = runs / f"{stem}-{n}.log"
        return path

    def _last_line(self, line: str) -> None:
        self._status = dataclasses.replace(self._status, last_line=line[:300])

    def _set(self, status: RunStatus) -> None:
        old = self._status.state
        self._status = status
        if old is not status.state:
            log.info("FamilyLog run: %s -> %s", old, status.state)
        self._states.emit(status)
