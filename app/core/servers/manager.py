"""LlamaServerManager: starts, stops and switches llama-server processes, one per port.

The public API is the seed's (``load_model``, ``unload_model``, ``switch_model``,
``wait_ready``, ``get_loaded_models``, ``shutdown``), so FamilyLog code written against
the seed works unchanged. Beyond the seed: one lock per port, an explicit state per port
with subscribers, readiness polling with back-off that stops the moment the process
exits, event-driven stop, a port check before spawning, and crash detection from the
process's exit.

A server is owned by its process group, not its PID: it is started as a group leader with
a mark in its environment (``app.platform.process_groups``), so one started through a
wrapper script that does not ``exec`` is stopped whole (TERM to the group, KILL after the
grace period, ``stop_grace``), and when the wrapper exits the rest of its group goes too.
A stop that needs SIGKILL says in the log what the server was doing. The processes
themselves (spawn, watch, stop) live in ``processes.ServerProcesses``; this class decides
when.

Its output goes straight to its log file (the server never waits on the app to write). A
log that cannot be written (a full disk) pauses that server's logging, with a notice
(``on_log_problem``), and never stops a load; logs are rotated while they grow
(``server_log.LogRotator``). A server on a port of its own (a role's, switch mode's) logs
to ``llama-server-<port>.log``; one on a free port to ``llama-server-<model key>.log``, so
a model keeps its log across loads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from app.core.servers import health
from app.core.servers.hooks import ServerHooks
from app.core.servers.keys import auth_headers
from app.core.servers.launch import (
    ServerExitedError,
    check_launch_files,
    exit_message,
    projector_loaded,
    signal_words,
)
from app.core.servers.options import known_options
from app.core.servers.ownership import OwnershipRecord
from app.core.servers.port_table import PortSlot, PortTable
from app.core.servers.ports import ensure_port_free, wait_port_free
from app.core.servers.processes import ServerProcesses
from app.core.servers.server_log import (
    LogRotator,
    safe_name,
)
from app.core.servers.states import LaunchSpec, ServerState, ServerStatus
from app.core.timing import Steps
from app.platform.processes import ProcessPlatform, process_platform

log = logging.getLogger(__name__)


class LlamaServerManager(PortTable):
    """Manages llama-server processes, one per port."""

    def __init__(
        self,
        llama_server_path: str,
        *,
        log_dir: Path | None = None,
        platform: ProcessPlatform | None = None,
        record: OwnershipRecord | None = None,
        stop_timeout: float | Callable[[], float] = 10.0,
        log_max_bytes: int | Callable[[], int] = 10 * 1024 * 1024,
        log_backups: int | Callable[[], int] = 3,
        api_key: str | None = None,
        env: dict[str, str] | None = None,
        check_binary: bool = True,
        private_ports: bool | Callable[[], bool] = False,
        on_log_problem: Callable[[ServerStatus, str], None] | None = None,
        hooks: ServerHooks | None = None,
    ) -> None:
        """``private_ports`` (or a function asked at each start): give each start of a server
        a fresh random key instead of ``api_key``, so only this manager's callers (which send
        ``keys.auth_headers(status)``) can use it. ``log_max_bytes`` and ``log_backups`` (or
        functions asked at each use): a server's log is rotated over that size, at its start
        and while it grows. ``stop_timeout`` (or a function asked at each stop): the grace
        period between SIGTERM and SIGKILL. ``on_log_problem(status, message)``: a server's
        log could not be written, so its logging is paused. ``hooks``: arguments added at
        each start, work after it is ready and before a graceful stop (the slot cache); also
        settable later as ``manager.hooks``."""
        self._server_path = str(llama_server_path)
        if check_binary and not Path(self._server_path).is_file():
            raise FileNotFoundError(
                f"llama-server not found: {self._server_path}. "
                "Set LLAMA_SERVER_PATH to the llama-server binary."
            )
        if log_dir is None:
            from app.paths import AppPaths

            log_dir = AppPaths.resolve().log_dir
        self.log_dir = Path(log_dir)
        self._platform = platform or process_platform()
        self._api_key = api_key or None
        PortTable.__init__(self)
        self.processes = ServerProcesses(
            self,
            self._server_path,
            self.log_dir,
            platform=self._platform,
            record=record,
            stop_timeout=stop_timeout,
            log_max_bytes=log_max_bytes,
            log_backups=log_backups,
            env=env,
            private_ports=private_ports,
            on_log_problem=on_log_problem,
            hooks=hooks,
        )

    # ── State and subscribers ─────────────────────────────────────────────────
    @property
    def server_path(self) -> str:
        return self._server_path

    def known_options(self) -> frozenset[str] | None:
        """The options its llama-server takes (``--help``, once per binary file; None when
        it cannot say). Blocking: call it off the event loop."""
        return known_options(self._server_path, self._platform.spawn_kwargs())

    @property
    def hooks(self) -> ServerHooks | None:
        """Arguments added at each start, work after it is ready and before a graceful stop."""
        return self.processes.hooks

    @hooks.setter
    def hooks(self, hooks: ServerHooks | None) -> None:
        self.processes.hooks = hooks

    @property
    def activity(self) -> Callable[[int], str] | None:
        """What a port's server is doing, in words, for the log of a stop that needed SIGKILL."""
        return self.processes.activity

    @activity.setter
    def activity(self, activity: Callable[[int], str] | None) -> None:
        self.processes.activity = activity

    @property
    def rotator(self) -> LogRotator:
        return self.processes.rotator

    def log_path(self, port: int) -> Path:
        """The log of the server on ``port`` (the last one there), else the port's log."""
        return self.processes.log_path(port)

    def _log_for(self, port: int, log_name: str | None) -> Path:
        if log_name:
            return self.log_dir / f"llama-server-{safe_name(log_name)}.log"
        return self.log_dir / f"llama-server-{port}.log"

    def stop_grace(self) -> float:
        """Seconds a server gets to exit after SIGTERM before SIGKILL."""
        return self.processes.stop_grace()

    def log_limits(self) -> tuple[int, int]:
        """The size over which a server's log is rotated when it starts, and the old logs kept."""
        return self.processes.log_limits()

    # ── Seed API ──────────────────────────────────────────────────────────────
    async def load_model(
        self,
        model_path: str,
        port: int = 8080,
        n_gpu_layers: int = -1,
        ctx_size: int = 8192,
        mmproj: str | None = None,
        n_threads: int | None = None,
        extra_args: list[str] | None = None,
        *,
        timeout: float = 120.0,
        log_name: str | None = None,
    ) -> ServerStatus:
        """Start llama-server with ``model_path`` on ``port`` and wait until it is ready.

        A server already running on the port with another model is stopped first; the same
        model with the same settings already ready is left as it is (no second process).
        ``log_name``: log to ``llama-server-<log_name>.log`` instead of the port's log.
        """
        spec = self._spec(model_path, port, n_gpu_layers, ctx_size, mmproj, n_threads, extra_args)
        slot = self._slot(spec.port)
        async with slot.lock:
            return await self._load_locked(slot, spec, timeout, self._log_for(spec.port, log_name))

    def _spec(
        self,
        model_path: str,
        port: int,
        n_gpu_layers: int = -1,
        ctx_size: int = 8192,
        mmproj: str | None = None,
        n_threads: int | None = None,
        extra_args: list[str] | None = None,
    ) -> LaunchSpec:
        return LaunchSpec(
            model_path=str(model_path),
            port=int(port),
            n_gpu_layers=int(n_gpu_layers),
            ctx_size=int(ctx_size),
            mmproj=str(mmproj) if mmproj else None,
            n_threads=n_threads,
            extra_args=tuple(extra_args or ()),
            api_key=self._api_key,
        )

    async def unload_model(self, port: int) -> None:
        """Stop the server on ``port``: TERM to its group, KILL after the stop timeout."""
        slot = self._slot(port)
        async with slot.lock:
            if slot.proc is None:
                log.info("No server on port %d, nothing to unload", port)
                if slot.status.state in (ServerState.FAILED, ServerState.STOPPING):
                    self._set(slot, state=ServerState.STOPPED, pid=None)
                return
            await self._before_stop(slot)
            await self.processes.stop(slot)

    async def switch_model(self, port: int, new_model_path: str, **kwargs) -> ServerStatus:
        """Replace the model on ``port``: stop the old server, wait for it and its port, start."""
        timeout = kwargs.pop("timeout", 120.0)
        spec = self._spec(new_model_path, port, **kwargs)  # TypeError for unknown arguments
        slot = self._slot(spec.port)
        async with slot.lock:
            old = slot.status.model_name or "no model"
            log.info("Switching port %d: %s -> %s", port, old, Path(spec.model_path).stem)
            return await self._load_locked(slot, spec, timeout, self._log_for(port, None))

    async def restart(
        self,
        port: int,
        *,
        only_if: Callable[[ServerStatus], bool] | None = None,
        timeout: float = 120.0,
    ) -> ServerStatus | None:
        """Stop the server on ``port`` (if one runs) and start it again with the same spec.

        ``only_if(status)`` is asked under the port's lock; when it says no (the user loaded
        or unloaded something in the meantime) nothing is done and None is returned.
        """
        slot = self._slot(port)
        async with slot.lock:
            spec = slot.status.spec
            if spec is None or (only_if is not None and not only_if(slot.status)):
                return None
            if slot.proc is not None:
                log.warning("Restarting %s on port %d", slot.status.model_name, port)
                await self.processes.stop(slot)
                await wait_port_free(port)
            return await self._load_locked(slot, spec, timeout, self.log_path(port))

    async def fail(
        self, port: int, error: str, *, only_if: Callable[[ServerStatus], bool] | None = None
    ) -> bool:
        """Stop the server on ``port`` and mark the port failed with ``error`` (a hung
        server nobody restarts must not look ready); ``only_if`` as for ``restart``."""
        slot = self._slot(port)
        async with slot.lock:
            if only_if is not None and not only_if(slot.status):
                return False
            await self.processes.stop(slot, final_state=ServerState.FAILED, error=error)
            return True

    async def wait_ready(self, port: int, timeout: float = 60) -> None:
        """Wait until the server on ``port`` answers ``/health`` with ready.

        Raises ``TimeoutError`` after ``timeout`` seconds and ``RuntimeError`` when the
        process exits first.
        """
        slot = self._slots.get(port)
        exited: asyncio.Future[int | None]
        if slot and slot.watcher:
            exited = slot.watcher
        else:
            exited = asyncio.get_running_loop().create_future()
        try:
            await health.poll_until_ready(
                port,
                exited,
                timeout,
                headers=auth_headers(slot.status if slot else None),
                prefix=slot.status.prefix if slot else "",
            )
        except health.ProcessExited as e:
            raise ServerExitedError(
                f"llama-server on port {port} exited with code {e.code} before it became "
                f"ready. Read {self.log_path(port)}",
                e.code,
                self.log_path(port),
            ) from None
        except TimeoutError:
            raise TimeoutError(
                f"llama-server on port {port} did not become ready within {timeout:g} s. "
                f"Read {self.log_path(port)}"
            ) from None
        finally:
            if not (slot and slot.watcher):
                exited.cancel()

    def get_loaded_models(self) -> dict[int, str]:
        """``{port: model_path}`` of the servers whose process is alive."""
        return {
            port: slot.status.model_path
            for port, slot in sorted(self._slots.items())
            if slot.proc is not None and slot.proc.returncode is None and slot.status.model_path
        }

    async def shutdown(self) -> None:
        """Stop every server this manager started (all ports at once)."""
        ports = [p for p, s in self._slots.items() if s.proc is not None]
        if ports:
            log.info("Stopping all llama-server processes: %s", ports)
        results = await asyncio.gather(
            *(self.unload_model(p) for p in ports), return_exceptions=True
        )
        for port, r in zip(ports, results, strict=True):
            if isinstance(r, BaseException):
                log.error("Stopping the server on port %d failed: %s", port, r)
        await self.rotator.close()

    # ── Internals ─────────────────────────────────────────────────────────────
    async def _load_locked(
        self, slot: PortSlot, spec: LaunchSpec, timeout: float, log_path: Path
    ) -> ServerStatus:
        current = slot.status
        steps = Steps()
        if (
            slot.proc is not None
            and slot.proc.returncode is None
            and current.state is ServerState.READY
            and current.spec == spec
        ):
            log.info("%s is already ready on port %d", current.model_name, slot.port)
            return current
        try:
            check_launch_files(self._server_path, spec)
        except OSError as e:
            log.error("Cannot load on port %d: %s", slot.port, e)
            raise
        if slot.proc is not None:
            log.warning(
                "Port %d holds %s; stopping it first", slot.port, current.model_name or "a server"
            )
            await self._before_stop(slot)
            steps.mark("before stop")
            await self.processes.stop(slot)
            steps.mark("stop")
            await wait_port_free(slot.port)
        try:
            ensure_port_free(slot.port)
            steps.mark("port")
        except Exception as e:
            self._set(slot, state=ServerState.FAILED, spec=spec, pid=None, error=str(e))
            raise
        await self.processes.spawn(slot, spec, log_path)
        steps.mark("spawn")
        assert slot.watcher is not None
        watch = None if slot.status.log_problem else health.LogWatch(log_path, slot.log_offset)
        try:
            waited = await health.poll_until_ready(
                slot.port,
                slot.watcher,
                timeout,
                headers=auth_headers(slot.status),
                prefix=slot.status.prefix,
                log=watch,
            )
            steps.mark("ready")
            await self._after_ready(slot)
            if slot.watcher.done():  # it exited while the hooks worked
                raise health.ProcessExited(slot.watcher.result())
        except health.ProcessExited as e:
            mmproj = spec.mmproj if spec.mmproj and not projector_loaded(log_path) else None
            msg = exit_message(
                f"llama-server on port {slot.port} exited with code {e.code}"
                f"{signal_words(e.code, loading=True, mmproj=mmproj)} while loading "
                f"{spec.model_path}",
                log_path,
            )
            self._set(slot, state=ServerState.FAILED, exit_code=e.code, error=msg)
            raise ServerExitedError(msg, e.code, log_path) from None
        except TimeoutError:
            msg = (
                f"llama-server on port {slot.port} did not become ready within {timeout:g} s "
                f"and was stopped. Read {log_path}"
            )
            await self.processes.stop(slot, final_state=ServerState.FAILED, error=msg)
            raise TimeoutError(msg) from None
        except BaseException:
            await asyncio.shield(self.processes.stop(slot))
            raise
        steps.mark("after ready")
        self._set(slot, state=ServerState.READY, ready_at=time.time())
        log.debug("Load on port %d: %s", slot.port, steps)
        log.info(
            "Model %s ready on port %d (PID %s) in %.3f s",
            Path(spec.model_path).stem,
            slot.port,
            slot.status.pid,
            waited,
        )
        return slot.status

    async def _after_ready(self, slot: PortSlot) -> None:
        if self.hooks is not None:
            try:
                await self.hooks.after_ready(slot.status)
            except Exception as e:  # never fails the load
                log.warning("After %s became ready on port %d: %s", slot.status.model_name,
                            slot.port, e)  # fmt: skip

    async def _before_stop(self, slot: PortSlot) -> None:
        if self.hooks is not None and slot.status.state is ServerState.READY:
            try:
                await self.hooks.before_stop(slot.status)
            except Exception as e:  # never stops the stop
                log.warning("Before stopping %s on port %d: %s", slot.status.model_name,
                            slot.port, e)  # fmt: skip
