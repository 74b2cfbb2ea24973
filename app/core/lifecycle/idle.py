"""Idle unload: a model with no request for ``IDLE_UNLOAD_MINUTES`` (or for its own ``ttl``,
set by a client as in LM Studio, else by its preset) is unloaded through the lifecycle (a
model a run holds, one serving a request, or a pinned one never is)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from app.config import SettingsSource
from app.core.lifecycle.instance import InstanceEvent
from app.core.lifecycle.lifecycle import ModelLifecycle

log = logging.getLogger(__name__)


class IdleUnloader:
    """A core service; reads ``IDLE_UNLOAD_MINUTES`` live from the settings source."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        settings: SettingsSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lifecycle = lifecycle
        self._settings = settings
        self._clock = clock
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def idle_seconds(self) -> float:
        return self._settings().IDLE_UNLOAD_MINUTES * 60.0

    def remaining(self) -> dict[int, float]:
        """Seconds until each ready instance is unloaded for being idle (its own ``ttl``, else
        ``IDLE_UNLOAD_MINUTES``); instances that are never unloaded are left out."""
        default = self.idle_seconds
        now = self._clock()
        out = {}
        for inst in self._lifecycle.loaded():
            idle = inst.ttl if inst.ttl is not None else default
            if idle <= 0 or inst.pinned:
                continue
            if inst.in_flight or inst.held_by:
                out[inst.port] = idle
            else:
                out[inst.port] = max(0.0, inst.last_used + idle - now)
        return out

    def kick(self) -> None:
        """Look again now (settings changed, a request ended)."""
        self._kick.set()

    async def start(self) -> None:
        events = self._lifecycle.subscribe(self._on_event)
        ttls = self._lifecycle.watch_ttl(self.kick)

        def unsubscribe() -> None:
            events()
            ttls()

        self._unsubscribe = unsubscribe
        self._task = asyncio.create_task(self._loop(), name="idle-unload")

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_event(self, _event: InstanceEvent) -> None:
        self._kick.set()

    async def _loop(self) -> None:
        while True:
            self._kick.clear()
            remaining = self.remaining()
            due = sorted(p for p, r in remaining.items() if r <= 0)
            unloaded = False
            for port in due:
                log.info("Unloading port %d: idle past its TTL or IDLE_UNLOAD_MINUTES", port)
                try:
                    unloaded |= await self._lifecycle.unload_port(port, only_if_idle=True)
                except Exception as e:
                    log.error("Idle unload of port %d failed: %s", port, e)
                    self._lifecycle.touch(port)  # again after another idle period
            if unloaded:
                continue
            # a request's end does not send an event: look again at the earliest deadline,
            # and at least every 60 s (settings may have turned idle unload on); a due port
            # that was busy after all is looked at again in a second
            timeout = 1.0 if due else min([*remaining.values(), 60.0])
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
            # that lands with a kick (gh-86296), and stop() would wait for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._kick.wait()
