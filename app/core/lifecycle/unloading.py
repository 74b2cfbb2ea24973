"""How models are unloaded: their servers stopped under the lifecycle's lock once their
requests finish (bounded by ``EVICT_WAIT_SECONDS``), for the user, the idle unloader and runs."""

from __future__ import annotations

import asyncio
import logging

from app.config import SettingsSource
from app.core.lifecycle.model_state import File, ModelRecords, ModelState
from app.core.servers.manager import LlamaServerManager
from app.core.servers.states import ServerState

log = logging.getLogger(__name__)


class Unloader:
    """The lifecycle's unloads (``ModelLifecycle.unload`` cancels a load of it first)."""

    def __init__(
        self,
        manager: LlamaServerManager,
        records: ModelRecords,
        settings: SettingsSource,
        lock: asyncio.Lock,
    ) -> None:
        self.manager = manager
        self._records = records
        self._settings = settings
        self._lock = lock

    async def unload(self, file: File) -> list[int]:
        """Unload the servers running ``file`` after their requests finish; the ports freed."""
        async with self._lock:
            ports = [
                p
                for p, st in self.manager.statuses().items()
                if st.state is not ServerState.STOPPED
                and st.spec is not None
                and st.spec.file == file
            ]
            await self._unload_ports(ports)
            return ports

    async def unload_all(self) -> list[int]:
        async with self._lock:
            ports = [
                p
                for p, st in self.manager.statuses().items()
                if st.state is not ServerState.STOPPED
            ]
            await self._unload_ports(ports)
            return ports

    async def unload_port(self, port: int, *, only_if_idle: bool = False) -> bool:
        """Unload whatever runs on ``port`` (the idle unloader, the models window's row)."""
        async with self._lock:
            rec = self._records.on_port(port)
            if only_if_idle and rec is not None and (rec.busy or rec.state is ModelState.DRAINING):
                return False
            if self.manager.status(port).state is ServerState.STOPPED:
                return False
            await self._unload_ports([port])
            return True

    async def _unload_ports(self, ports: list[int]) -> None:
        if not ports:
            return
        wait = self._settings().EVICT_WAIT_SECONDS
        recs = [r for p in ports if (r := self._records.on_port(p)) is not None]
        with self._records.draining(recs, "unloading"):
            flying = [r for r in recs if r.in_flight]
            if flying:
                log.info("Waiting for requests on ports %s to finish", [r.port for r in flying])
                if not await self._records.wait_idle(flying, wait, holds=False):
                    log.warning(
                        "Requests on ports %s still running after %g s; unloading anyway",
                        [r.port for r in flying],
                        wait,
                    )
            results = await asyncio.gather(
                *(self.manager.unload_model(p) for p in ports), return_exceptions=True
            )
            for port, r in zip(ports, results, strict=True):
                if isinstance(r, BaseException):
                    log.error("Unloading port %d failed: %s", port, r)
