"""GpuMonitor: probes GPU memory on a timer (fast while someone looks, slow otherwise).

Probes and log reads run in the loop's executor; subscribers get each new snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from app.core.events import Listeners
from app.core.gpu.probe import GpuProber
from app.core.gpu.server_memory import ServerMemory, read_server_memory
from app.core.gpu.snapshot import GpuSnapshot
from app.core.servers.manager import LlamaServerManager
from app.core.servers.states import ServerState, StateEvent

log = logging.getLogger(__name__)

FAST_SECONDS = 2.0  # while the models window is visible
SLOW_SECONDS = 60.0  # otherwise, for the tray tooltip


class GpuMonitor:
    def __init__(
        self,
        manager: LlamaServerManager,
        prober: GpuProber | None = None,
        *,
        fast: float = FAST_SECONDS,
        slow: float = SLOW_SECONDS,
    ) -> None:
        self.manager = manager
        self.prober = prober or GpuProber()
        self.fast_interval = fast
        self.slow_interval = slow
        self.server_memory: dict[int, ServerMemory] = {}  # by PID
        self.probes = 0
        self._fast = False
        self._listeners: Listeners[GpuSnapshot] = Listeners("GPU snapshots")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsub = manager.subscribe(self._on_state)

    @property
    def interval(self) -> float:
        return self.fast_interval if self._fast else self.slow_interval

    def subscribe(self, cb: Callable[[GpuSnapshot], None]) -> Callable[[], None]:
        return self._listeners.add(cb)

    def set_fast(self, fast: bool) -> None:
        """Fast probing while a window shows the numbers; switching on probes at once."""
        if fast and not self._fast:
            self._wake.set()
        self._fast = fast

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gpu-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._unsub()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.prober.close)

    async def refresh(self) -> GpuSnapshot:
        """Probe once now (in the executor) and tell the subscribers."""
        loop = asyncio.get_running_loop()
        statuses = self.manager.statuses().values()
        pids = [s.pid for s in statuses if s.pid]
        snapshot = await loop.run_in_executor(None, self.prober.probe, pids)
        for st in statuses:
            if st.pid and st.state is ServerState.READY and st.pid not in self.server_memory:
                path = st.log_path or self.manager.log_path(st.port)
                self.server_memory[st.pid] = await loop.run_in_executor(
                    None, read_server_memory, path
                )
        for pid in list(self.server_memory):
            if pid not in pids:
                del self.server_memory[pid]
        self.probes += 1
        self._listeners.emit(snapshot)
        return snapshot

    def _on_state(self, event: StateEvent) -> None:
        # a model came or went: probe now, so the tray's status line shows what it holds
        if event.new in (ServerState.READY, ServerState.STOPPED):
            self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("GPU probe failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
