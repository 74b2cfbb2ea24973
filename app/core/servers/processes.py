"""The process behind a port: start llama-server as its own process group with its log,
watch it exit, and stop it whole (TERM to the group, KILL after the grace period), saying in
the log what it was doing when a stop needed SIGKILL. ``LlamaServerManager`` decides when;
this module does it."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from app.core.servers.finish import finish
from app.core.servers.hooks import ServerHooks
from app.core.servers.keys import PRIVATE_PREFIX, new_key
from app.core.servers.launch import child_env, exit_message, signal_words
from app.core.servers.ownership import OwnershipRecord
from app.core.servers.port_table import PortSlot, PortTable
from app.core.servers.server_log import (
    LogRotator,
    append_note,
    last_output,
    open_server_log,
    redact,
)
from app.core.servers.states import LaunchSpec, ServerState, ServerStatus, file_identity
from app.core.timing import Steps
from app.platform.open_files import out_of_files, out_of_files_words
from app.platform.process_groups import GroupRef, GroupStopper, marked_env, new_mark
from app.platform.processes import ProcessPlatform
from app.platform.spawn import Child, start_child

log = logging.getLogger("app.core.servers.manager")


class ServerProcesses:
    """Spawns, watches and stops the llama-server processes of a ``PortTable``'s slots."""

    def __init__(
        self,
        table: PortTable,
        server_path: str,
        log_dir: Path,
        *,
        platform: ProcessPlatform,
        record: OwnershipRecord | None,
        stop_timeout: float | Callable[[], float],
        log_max_bytes: int | Callable[[], int],
        log_backups: int | Callable[[], int],
        env: dict[str, str] | None,
        private_ports: bool | Callable[[], bool],
        on_log_problem: Callable[[ServerStatus, str], None] | None,
        hooks: ServerHooks | None,
    ) -> None:
        self._table = table
        self._server_path = server_path
        self.log_dir = log_dir
        self._platform = platform
        self._record = record
        self._stop_timeout = stop_timeout
        self._log_max_bytes = log_max_bytes
        self._log_backups = log_backups
        self._env = env
        self._private_ports = private_ports
        self._on_log_problem = on_log_problem
        # What a port's server is doing, in words, for the log of a stop that needed
        # SIGKILL ("serving 2 requests"); the lifecycle, which counts requests, sets it.
        self.activity: Callable[[int], str] | None = None
        self.rotator = LogRotator(self.log_limits)
        self.hooks = hooks

    def log_path(self, port: int) -> Path:
        """The log of the server on ``port`` (the last one there), else the port's log."""
        slot = self._table._slots.get(port)
        if slot is not None and slot.status.log_path is not None:
            return slot.status.log_path
        return self.log_dir / f"llama-server-{port}.log"

    def stop_grace(self) -> float:
        """Seconds a server gets to exit after SIGTERM before SIGKILL."""
        t = self._stop_timeout
        return t() if callable(t) else t

    def log_limits(self) -> tuple[int, int]:
        """The size over which a server's log is rotated when it starts, and the old logs kept."""
        size, backups = self._log_max_bytes, self._log_backups
        return (size() if callable(size) else size, backups() if callable(backups) else backups)

    def _server_key(self, spec: LaunchSpec) -> tuple[str | None, str]:
        """The key of this start, and the path prefix it serves under (``keys``)."""
        private = self._private_ports
        if private() if callable(private) else private:
            return new_key(), PRIVATE_PREFIX
        return spec.api_key, ""

    async def spawn(self, slot: PortSlot, spec: LaunchSpec, log_path: Path) -> None:
        added = tuple(self.hooks.launch_args(spec)) if self.hooks is not None else ()
        # the hooks' arguments before the user's own, which come last and so win
        cmd = replace(spec, api_key=None, extra_args=(*added, *spec.extra_args)).command(
            self._server_path
        )
        key, prefix = self._server_key(spec)
        logf: BinaryIO | None = None
        problem = None
        try:
            logf = open_server_log(log_path, cmd, *self.log_limits())
            slot.log_offset = logf.tell()
        except OSError as e:
            if out_of_files(e):  # no descriptor for its log: none for the server either
                msg = f"Cannot write the llama-server log {log_path}: {e.strerror or e}. "
                msg += out_of_files_words()
                self._table._set(slot, state=ServerState.FAILED, spec=spec, pid=None, error=msg)
                raise RuntimeError(msg) from e
            # a full disk: the model runs all the same, without its log
            problem = (
                f"Cannot write the llama-server log {log_path}: {e.strerror or e}. "
                f"{Path(spec.model_path).stem} runs without its log until it is loaded again; "
                "free disk space (or fix the folder's permissions) to get its log back."
            )
            log.error("%s", problem)
        log.info("Starting llama-server: %s", " ".join(redact(cmd)))
        mark = new_mark("server")
        argv, spawn_kwargs = self._platform.spawn_args(cmd)
        try:
            proc = await start_child(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logf if logf is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                env=marked_env(child_env(self._env, key, prefix), mark),
                **spawn_kwargs,
            )
        except (OSError, subprocess.SubprocessError) as e:
            msg = f"Cannot start llama-server {self._server_path}: {getattr(e, 'strerror', None) or e}"
            if out_of_files(e):
                msg += f": {out_of_files_words()}"
            self._table._set(slot, state=ServerState.FAILED, spec=spec, pid=None, error=msg)
            raise RuntimeError(msg) from e
        finally:
            if logf is not None:
                logf.close()  # the child holds its own copy
        adopt = getattr(self._platform, "adopt", None)
        if adopt is not None:
            adopt(proc.pid)
        slot.proc = proc
        slot.stopping = False
        slot.group = GroupRef.of(proc.pid, mark)
        if self._record is not None:
            self._record.add(proc.pid, slot.port, spec.model_path, cmd, slot.group)
        slot.watcher = asyncio.create_task(
            self._watch(slot, proc, slot.group), name=f"watch-{slot.port}"
        )
        self._table._set(
            slot,
            state=ServerState.STARTING,
            spec=spec,
            pid=proc.pid,
            log_path=log_path,
            log_problem=problem,
            started_at=time.time(),
            ready_at=None,
            exit_code=None,
            error=None,
            key=key,
            prefix=prefix,
            file_id=file_identity(spec.model_path),
        )
        if problem is not None and self._on_log_problem is not None:
            self._on_log_problem(slot.status, problem)
        if problem is None:
            self.rotator.follow(log_path)

    async def _watch(self, slot: PortSlot, proc: Child, group: GroupRef) -> int:
        code = await proc.wait()
        if not slot.stopping:
            # a wrapper script that did not exec: llama-server (its child) may live on in
            # its group, holding the port; a server is its whole group, so it goes too
            left = await GroupStopper(group).stop(self.stop_grace())
            if left.count:
                log.warning("Port %d: the server's process %s", slot.port, left.words())
                append_note(slot.status.log_path or self.log_path(slot.port), left.words())
        if self._record is not None:
            self._record.remove(proc.pid)
        append_note(self.log_path(slot.port), f"PID {proc.pid} exited with code {code}")
        self.rotator.forget(slot.status.log_path)
        if slot.proc is proc:
            slot.proc = None
            if not slot.stopping and slot.status.state is ServerState.READY:
                msg = exit_message(
                    f"llama-server on port {slot.port} ({slot.status.model_name}) exited "
                    f"unexpectedly with code {code}{signal_words(code, loading=False)}",
                    self.log_path(slot.port),
                )
                self._table._set(slot, state=ServerState.FAILED, exit_code=code, error=msg)
        return code

    def _doing(self, slot: PortSlot) -> str:
        """What the server on ``slot`` is doing, in words, for the log of a kill."""
        st = slot.status
        if st.state is ServerState.STARTING:
            took = time.time() - (st.started_at or time.time())
            return f"still loading the model ({took:.0f} s after its start)"
        what = self.activity(slot.port) if self.activity is not None else ""
        return what or "idle"

    async def stop(
        self,
        slot: PortSlot,
        final_state: ServerState = ServerState.STOPPED,
        error: str | None = None,
    ) -> None:
        """Stop the server of ``slot`` (its lock held). A stop that began finishes: a caller
        cancelled meanwhile waits for its end, so the lock is never let go half way."""
        await finish(self._stop_now(slot, final_state, error))

    async def _stop_now(self, slot: PortSlot, final_state: ServerState, error: str | None) -> None:
        proc, watcher, group = slot.proc, slot.watcher, slot.group
        if proc is None or watcher is None or group is None:
            self._table._set(slot, state=final_state, pid=None, error=error)
            return
        slot.stopping = True
        name = slot.status.model_name
        doing = self._doing(slot)
        steps = Steps()
        self._table._set(slot, state=ServerState.STOPPING)
        log.info("Stopping %s on port %d (PID %d)", name, slot.port, proc.pid)
        grace = self.stop_grace()
        stopped = await GroupStopper(group).stop(grace, leader_exited=watcher)
        steps.mark("signal")
        if stopped.leader_killed or stopped.killed:
            last = last_output(self.log_path(slot.port), 1)
            why = (
                f"llama-server PID {proc.pid} on port {slot.port} ({name}) did not exit "
                f"{grace:g} s after SIGTERM, so it was killed (SIGKILL). When asked to stop "
                f"it was {doing}" + (f"; its last output: {last[-1].strip()}" if last else "")
            )
            log.warning("%s", why)
            append_note(self.log_path(slot.port), f"killed PID {proc.pid}: {why}")
        code = await asyncio.shield(watcher)
        steps.mark("exit")
        slot.proc = None
        slot.stopping = False
        self._table._set(slot, state=final_state, pid=None, exit_code=code, error=error)
        log.debug("Stop on port %d: %s", slot.port, steps)
        log.info("%s unloaded from port %d (exit code %s)", name or "Server", slot.port, code)
