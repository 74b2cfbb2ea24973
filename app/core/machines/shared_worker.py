"""This machine's GPU shared with other machines: one llama.cpp ``ggml-rpc-server``, run and
supervised by the app ("Share this GPU with other machines" in the tray, the
``RPC_WORKER_*`` settings, ``familylog-tray --rpc-worker``).

The RPC protocol has no authentication, so the worker binds to a loopback address unless
``RPC_WORKER_ALLOW_REMOTE`` is set as well as a network address in ``RPC_WORKER_HOST``;
otherwise it is not started and the user is told why. It is ready once it answers the
protocol's HELLO (its version and devices are then known); it is started again when it
exits on its own (after 1 s, 2 s, 4 s … up to ``MAX_RESTARTS`` within ``WINDOW`` seconds),
and follows a change of its settings at once. Its output goes to its own log file, in the
server logs' format.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from app.config import Settings, SettingsSource
from app.core.events import Listeners
from app.core.machines.rpc_binary import missing_text, rpc_server_path
from app.core.machines.rpc_protocol import Device, RpcError, Version, ask_worker
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.address import is_loopback
from app.core.servers.launch import signal_words
from app.core.servers.server_log import append_note, last_output, open_server_log
from app.core.units import size_text
from app.platform.processes import ProcessPlatform, process_platform
from app.settings_machines import NO_AUTH

log = logging.getLogger(__name__)

MAX_RESTARTS = 5
WINDOW = 600.0
READY_TIMEOUT = 30.0
SETTINGS = (
    "RPC_WORKER_ENABLED",
    "RPC_WORKER_HOST",
    "RPC_WORKER_PORT",
    "RPC_WORKER_ALLOW_REMOTE",
    "RPC_WORKER_DEVICES",
    "RPC_WORKER_CACHE",
)


class ShareState(enum.StrEnum):
    OFF = "off"
    STARTING = "starting"
    RUNNING = "sharing"
    FAILED = "failed"


@dataclass(frozen=True)
class ShareStatus:
    state: ShareState = ShareState.OFF
    address: str = ""  # host:port it listens on
    pid: int | None = None
    version: Version | None = None
    devices: tuple[Device, ...] = ()
    error: str = ""  # why it is not running
    remote: bool = False  # other machines can reach it

    def text(self) -> str:
        """One line for the tray and the models window."""
        if self.state is ShareState.RUNNING:
            n = len(self.devices)
            room = f"{n} device{'s' if n != 1 else ''}, {size_text(sum(d.free for d in self.devices))} free"
            who = "other machines can use it" if self.remote else "this machine only"
            return f"Sharing this GPU on {self.address} ({room}; {who})"
        if self.state is ShareState.STARTING:
            return f"Starting the worker on {self.address}…"
        if self.state is ShareState.FAILED:
            return f"Not sharing: {self.error}"
        return "Not sharing this GPU"


def command(binary: str, s: Settings) -> list[str]:
    """ggml-rpc-server's command line for the settings ``s``."""
    cmd = [binary, "--host", s.RPC_WORKER_HOST, "--port", str(s.RPC_WORKER_PORT)]
    cmd += ["--threads", str(os.cpu_count() or 1)]  # for a CPU device it offers
    if s.RPC_WORKER_DEVICES:
        cmd += ["--device", s.RPC_WORKER_DEVICES]
    if s.RPC_WORKER_CACHE:
        cmd.append("--cache")
    return cmd


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host.strip("[]")


class SharedWorker:
    """The one ggml-rpc-server of this app; a core service (and ``--rpc-worker``'s)."""

    def __init__(
        self,
        settings: SettingsSource,
        server_path: Callable[[], str],
        log_dir: Path,
        notices: NoticeBus | None = None,
        *,
        platform: ProcessPlatform | None = None,
        subscribe: Callable[[Callable], Callable[[], None]] | None = None,
        first_delay: float = 1.0,
    ) -> None:
        self._settings = settings
        self._server_path = server_path
        self._log_dir = log_dir
        self._notices = notices
        self._platform = platform or process_platform()
        self._subscribe = subscribe
        self._first_delay = first_delay
        self.status = ShareStatus()
        self._proc: asyncio.subprocess.Process | None = None
        self._running_cmd: list[str] = []
        self._log = self.log_path  # the log of the process running (or last run)
        self._watch: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._following = asyncio.Lock()  # one follow at a time: a second sees the first's result
        self._crashes: list[float] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._listeners: Listeners[[]] = Listeners("the shared worker")

    @property
    def running_command(self) -> list[str]:
        """The command line of the worker running now ([] when none)."""
        return list(self._running_cmd) if self._proc is not None else []

    @property
    def log_path(self) -> Path:
        """Its log: one per port, in the server logs' format."""
        return self._log_dir / f"ggml-rpc-server-{self._settings().RPC_WORKER_PORT}.log"

    def subscribe(self, cb: Callable[[], object]) -> Callable[[], None]:
        """``cb()`` whenever the worker's status changes."""
        return self._listeners.add(cb)

    def _set(self, status: ShareStatus) -> None:
        if status != self.status:
            self.status = status
            self._listeners.emit()

    def _tell(self, level: Level, title: str, text: str) -> None:
        if self._notices is not None:
            self._notices.emit(Notice(level, title, text, self.log_path))
        else:
            log.log(logging.ERROR if level is Level.ERROR else logging.INFO, "%s: %s", title, text)

    # ── Service ────────────────────────────────────────────────────────────────
    async def start(self) -> None:
        if self._subscribe is not None:
            self._unsubscribe = self._subscribe(self._on_settings)
        if self._settings().RPC_WORKER_ENABLED:
            await self.turn_on()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.turn_off()

    def _on_settings(self, old: Settings, new: Settings) -> None:
        if any(getattr(old, n) != getattr(new, n) for n in SETTINGS):
            task = asyncio.get_running_loop().create_task(self.follow(), name="rpc-worker")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def follow(self) -> ShareStatus:
        """Run the worker as the settings in force say: started, restarted with new
        settings, or stopped."""
        async with self._following:
            s = self._settings()
            if not s.RPC_WORKER_ENABLED:
                await self.turn_off()
            elif self._proc is None or self._running_cmd != self._command(s):
                await self.turn_on()
            return self.status

    def _command(self, s: Settings) -> list[str]:
        return command(str(rpc_server_path(self._server_path()) or ""), s)

    # ── Starting and stopping ──────────────────────────────────────────────────
    async def turn_on(self) -> ShareStatus:
        """Start the worker with the settings in force (stopping one running with others);
        the status says whether it runs, or why not."""
        async with self._lock:
            await self._stop_process()
            self._crashes = []
            return await self._start_process()

    async def turn_off(self) -> None:
        async with self._lock:
            await self._stop_process()
            self._set(ShareStatus())

    async def _start_process(self) -> ShareStatus:
        s = self._settings()
        address = f"{s.RPC_WORKER_HOST}:{s.RPC_WORKER_PORT}"
        binary = rpc_server_path(self._server_path())
        local = await is_loopback(s.RPC_WORKER_HOST)
        problem = None
        if binary is None:
            problem = missing_text(self._server_path())
        elif not local and not s.RPC_WORKER_ALLOW_REMOTE:
            problem = (
                f"{s.RPC_WORKER_HOST} is not a loopback address, so other machines could use "
                f"this GPU. {NO_AUTH}. Set RPC_WORKER_ALLOW_REMOTE=true ('Let other machines "
                "reach the worker') to allow it, on a network you trust; or set "
                "RPC_WORKER_HOST=127.0.0.1."
            )
        if problem is not None:
            self._set(ShareStatus(ShareState.FAILED, address, error=problem))
            self._tell(Level.ERROR, "Not sharing this GPU", problem)
            return self.status
        cmd = command(str(binary), s)
        self._set(ShareStatus(ShareState.STARTING, address, remote=not local))
        self._log = log_path = self.log_path
        logfile = open_server_log(log_path, cmd, s.LOG_MAX_BYTES, s.LOG_BACKUPS)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=asyncio.subprocess.STDOUT,
                **self._platform.spawn_kwargs(),
            )
        except OSError as e:
            why = f"cannot run {cmd[0]}: {e.strerror or e}"
            self._set(ShareStatus(ShareState.FAILED, address, error=why))
            self._tell(Level.ERROR, "Not sharing this GPU", why)
            return self.status
        finally:
            logfile.close()
        self._platform.adopt(proc.pid)
        self._proc, self._running_cmd = proc, cmd
        info = await self._wait_ready(proc, _client_host(s.RPC_WORKER_HOST), s.RPC_WORKER_PORT)
        if info is None:
            code = proc.returncode
            if code is None:  # alive but never answered
                await self._stop_process()
                why = f"it did not answer within {READY_TIMEOUT:g} s"
            else:
                self._proc = None
                lines = "; ".join(last_output(log_path, 3))
                why = f"it exited with code {code}{signal_words(code, loading=True)}: {lines}"
            self._set(ShareStatus(ShareState.FAILED, address, error=why))
            self._tell(Level.ERROR, "Not sharing this GPU", f"The worker on {address}: {why}")
            return self.status
        self._set(
            ShareStatus(
                ShareState.RUNNING, address, proc.pid, info.version, info.devices, remote=not local
            )
        )
        log.info("%s (PID %d, protocol %s)", self.status.text(), proc.pid, info.version)
        self._watch = asyncio.get_running_loop().create_task(self._watch_exit(proc))
        return self.status

    async def _wait_ready(self, proc: asyncio.subprocess.Process, host: str, port: int):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while proc.returncode is None and loop.time() < deadline:
            try:
                return await ask_worker(host, port, timeout=2.0)
            except RpcError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.05)
        return None

    async def _stop_process(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        proc, self._proc = self._proc, None
        self._running_cmd = []
        if proc is None or proc.returncode is not None:
            return
        self._platform.terminate_tree(proc.pid)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            self._platform.kill_tree(proc.pid)
            await proc.wait()
        append_note(self._log, f"stopped (PID {proc.pid})")

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._proc is not proc:
            return
        self._proc = None
        append_note(self._log, f"exited on its own with code {code}")
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < WINDOW] + [now]
        address = self.status.address
        lines = "; ".join(last_output(self._log, 3))
        why = f"exited with code {code}{signal_words(code, loading=False)}: {lines}"
        if len(self._crashes) > MAX_RESTARTS:
            self._set(replace(self.status, state=ShareState.FAILED, pid=None, error=why))
            self._tell(
                Level.ERROR,
                "Stopped sharing this GPU",
                f"The worker on {address} {why}; it failed {len(self._crashes)} times within "
                f"{WINDOW / 60:g} min and is not started again. Read its log.",
            )
            return
        delay = min(self._first_delay * 2 ** (len(self._crashes) - 1), 30.0)
        self._set(replace(self.status, state=ShareState.STARTING, pid=None, error=why))
        self._tell(
            Level.WARNING,
            "Restarting the shared worker",
            f"The worker on {address} {why}; starting it again in {delay:g} s.",
        )
        await asyncio.sleep(delay)
        async with self._lock:
            if self._proc is None and self._settings().RPC_WORKER_ENABLED:
                self._watch = None
                await self._start_process()
