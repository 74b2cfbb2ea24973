"""A channel: streamed work (a load, a prediction) the client opened, answered with
``channelSend`` messages until ``channelClose`` (or ``channelError``). The client may send
``{"type": "cancel"}`` on it at any time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Channel:
    def __init__(self, channel_id: int, endpoint: str, send: Send) -> None:
        self.id = channel_id
        self.endpoint = endpoint
        self._send = send
        self.cancelled = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await self._send({"type": "channelSend", "channelId": self.id, "message": message})

    def received(self, message: Any) -> bool:
        """A message from the client; False when it is not one this channel knows."""
        if isinstance(message, dict) and message.get("type") == "cancel":
            self.cancelled.set()
            return True
        return False

    async def unless_cancelled(self, work: Awaitable[T]) -> tuple[T | None, bool]:
        """``(result, False)`` when ``work`` ends first; ``(None, True)`` when the client
        cancels first (``work`` is cancelled and awaited)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.cancelled.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            return None, True
        return task.result(), False
