"""How each running instance is used: requests in flight, runs holding it, last use.

Counted per port (one process at a time on a port); the lifecycle asks it whether an
instance may be evicted and waits on it until one may.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class _Port:
    in_flight: int = 0
    holders: set[str] = field(default_factory=set)
    last_used: float = 0.0
    served: int = 0  # requests since the process started


class Usage:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._ports: dict[int, _Port] = {}
        self._changed = asyncio.Event()  # set on every release; waiters clear it

    def _port(self, port: int) -> _Port:
        return self._ports.setdefault(port, _Port())

    # ── Reading ────────────────────────────────────────────────────────────────
    def in_flight(self, port: int) -> int:
        p = self._ports.get(port)
        return p.in_flight if p else 0

    def holders(self, port: int) -> tuple[str, ...]:
        p = self._ports.get(port)
        return tuple(sorted(p.holders)) if p else ()

    def last_used(self, port: int) -> float:
        p = self._ports.get(port)
        return p.last_used if p else 0.0

    def served(self, port: int) -> int:
        p = self._ports.get(port)
        return p.served if p else 0

    def busy(self, port: int) -> bool:
        p = self._ports.get(port)
        return bool(p and (p.in_flight or p.holders))

    # ── Changing ───────────────────────────────────────────────────────────────
    def enter(self, port: int) -> None:
        p = self._port(port)
        p.in_flight += 1
        p.served += 1
        p.last_used = self._clock()

    def leave(self, port: int) -> None:
        p = self._port(port)
        p.in_flight = max(0, p.in_flight - 1)
        p.last_used = self._clock()
        self._changed.set()

    def touch(self, port: int) -> None:
        self._port(port).last_used = self._clock()

    def hold(self, port: int, holder: str) -> None:
        self._port(port).holders.add(holder)

    def release(self, holder: str) -> list[int]:
        """Let go of everything ``holder`` holds; returns the ports."""
        ports = [port for port, p in self._ports.items() if holder in p.holders]
        for port in ports:
            self._ports[port].holders.discard(holder)
        if ports:
            self._changed.set()
        return ports

    def forget(self, port: int) -> None:
        """The process on ``port`` is gone: its counts go (holds stay with the port)."""
        p = self._ports.get(port)
        if p is not None:
            p.in_flight = 0
            p.served = 0
            p.last_used = 0.0
            self._changed.set()

    async def wait_idle(self, ports: Iterable[int], timeout: float, *, holds: bool = True) -> bool:
        """Wait until none of ``ports`` is busy (``holds=False``: has requests in flight);
        False when ``timeout`` ran out first."""
        ports = list(ports)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        busy = self.busy if holds else self.in_flight
        while any(busy(p) for p in ports):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(left):  # not wait_for: it can swallow a cancel
                    await self._changed.wait()
            except TimeoutError:
                return not any(busy(p) for p in ports)
        return True
