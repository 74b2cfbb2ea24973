"""VRAM settle: after a server on a GPU stops, wait until the driver no longer lists its
process before the next model starts, so a large model does not fail to load for memory
that was not yet freed (llama-swap #97)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from app.core.gpu.snapshot import GpuProbe, GpuSnapshot

log = logging.getLogger(__name__)

STEP = 0.02  # at least every 20 ms


def released(snapshot: GpuSnapshot, pids: Collection[int]) -> bool:
    """True when no GPU is seen or the driver lists none of ``pids`` any more."""
    if not snapshot.has_gpu:
        return True
    return not any(p.pid in pids for p in snapshot.processes)


async def settle(probe: GpuProbe, pids: Collection[int], timeout: float) -> float | None:
    """Seconds until the memory of ``pids`` was released; None when ``timeout`` ran out
    first (the next load then goes ahead anyway). ``probe`` blocks: it runs off the loop."""
    if not pids or timeout <= 0:
        return 0.0
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    while True:
        t0 = time.monotonic()
        snapshot = await loop.run_in_executor(None, probe, sorted(pids))
        if released(snapshot, pids):
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            log.warning("GPU memory of PIDs %s not released after %g s", sorted(pids), timeout)
            return None
        await asyncio.sleep(max(0.0, STEP - (time.monotonic() - t0)))
