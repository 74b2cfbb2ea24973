"""The requests in flight to each llama-server, so that a server declared hung has them all
answered at once (503 with the reason) instead of left waiting on a process that will never
answer: a request still waiting for the answer's head is cancelled, an answer being read
gets the error at its next read."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import aiohttp


class InFlight:
    """``error(reason)``: what a read of an answer raises once its server is declared hung
    (the API's 503)."""

    def __init__(self, error: Callable[[str], BaseException]) -> None:
        self._error = error
        self._posts: dict[int, set[asyncio.Future]] = {}
        self._answers: dict[int, weakref.WeakSet[aiohttp.ClientResponse]] = {}
        self._reasons: dict[asyncio.Future, str] = {}

    def posting(self, port: int, fut: asyncio.Future) -> Callable[[], str | None]:
        """Watch ``fut`` (a POST waiting for the answer's head) until it is done; returns a
        function that says why it was cancelled by a hung server (None: it was not)."""
        posts = self._posts.setdefault(port, set())
        posts.add(fut)

        def done(_f: asyncio.Future) -> None:
            posts.discard(fut)

        fut.add_done_callback(done)
        return lambda: self._reasons.pop(fut, None)

    def answering(self, port: int, response: aiohttp.ClientResponse) -> None:
        """Watch an answer being read (until it is gone)."""
        self._answers.setdefault(port, weakref.WeakSet()).add(response)

    def busy(self, port: int) -> bool:
        """True while a POST to ``port`` waits for its answer or an answer is being read."""
        posts = self._posts.get(port)
        if posts and any(not f.done() for f in posts):
            return True
        return any(not r.closed for r in self._answers.get(port, ()))

    def trip(self, event: tuple[int, str]) -> None:
        """The server on ``port`` is hung: answer everything in flight to it with ``reason``."""
        port, reason = event
        for fut in list(self._posts.get(port, ())):
            if not fut.done():
                self._reasons[fut] = reason
                fut.cancel()
        for response in list(self._answers.get(port, ())):
            if not response.closed:
                response.content.set_exception(self._error(reason))
