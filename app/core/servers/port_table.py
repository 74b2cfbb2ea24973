"""The table of ports a manager serves: each port's slot (lock, process, state) and the
subscribers told of every state change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.events import Listeners
from app.core.servers.states import SERVER_TRANSITIONS, ServerState, ServerStatus, StateEvent
from app.platform.process_groups import GroupRef
from app.platform.spawn import Child

log = logging.getLogger("app.core.servers.manager")


@dataclass
class PortSlot:
    port: int
    status: ServerStatus
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    log_offset: int = 0  # where this start's output begins in the port's log
    proc: Child | None = None
    watcher: asyncio.Task[int] | None = None
    stopping: bool = False
    group: GroupRef | None = None  # its server's process group (a wrapper's children too)


class PortTable:
    """Per-port slots and state events; ``LlamaServerManager`` builds on it."""

    def __init__(self) -> None:
        self._slots: dict[int, PortSlot] = {}
        self._listeners: Listeners[StateEvent] = Listeners("port states")

    def subscribe(self, callback: Callable[[StateEvent], object]) -> Callable[[], None]:
        """Call ``callback(StateEvent)`` on every change; returns a function that unsubscribes."""
        return self._listeners.add(callback)

    def status(self, port: int) -> ServerStatus:
        slot = self._slots.get(port)
        return slot.status if slot else ServerStatus(port=port, state=ServerState.STOPPED)

    def statuses(self) -> dict[int, ServerStatus]:
        return {port: slot.status for port, slot in sorted(self._slots.items())}

    def is_busy(self, port: int) -> bool:
        """True while an operation holds the port's lock."""
        slot = self._slots.get(port)
        return bool(slot and slot.lock.locked())

    async def settled(self, port: int) -> None:
        """Return once no operation (start, stop, restart) is under way on ``port``."""
        slot = self._slots.get(port)
        if slot is not None:
            async with slot.lock:
                pass

    def _slot(self, port: int) -> PortSlot:
        slot = self._slots.get(port)
        if slot is None:
            slot = PortSlot(port=port, status=ServerStatus(port=port, state=ServerState.STOPPED))
            self._slots[port] = slot
        return slot

    def _set(self, slot: PortSlot, **changes) -> None:
        """Change the port's status; a state change ``SERVER_TRANSITIONS`` does not allow
        raises ``IllegalTransitionError`` and changes nothing."""
        old = slot.status
        new = old.evolve(**changes)
        SERVER_TRANSITIONS.check(old.state, new.state, f"Port {slot.port}")
        slot.status = new
        if old.state != slot.status.state:
            if slot.status.state is ServerState.FAILED and slot.status.error:
                log.error("Port %d: %s -> failed: %s", slot.port, old.state, slot.status.error)
            else:
                log.info("Port %d: %s -> %s", slot.port, old.state, slot.status.state)
        event = StateEvent(slot.port, old.state, slot.status.state, slot.status)
        self._listeners.emit(event)
