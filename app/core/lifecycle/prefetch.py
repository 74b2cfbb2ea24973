"""Read the model most likely needed next into the page cache while the current one serves
(switch mode), so a switch to it does not wait for the disk.

Most likely next: the other FamilyLog role when a role is loaded, else the most recently
used other model. Only when the available RAM covers the file with a margin; stopped the
moment another load starts (that load reads the disk) or the plan changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from app.config import SettingsSource
from app.core.discovery.gguf_info import model_files
from app.core.lifecycle.instance import InstanceEvent
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.models.entry import ModelEntry
from app.core.servers.states import ServerState

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024
RAM_MARGIN = 1.25  # the file must fit in available RAM this many times over
Reader = Callable[[Path, threading.Event], int]


def next_model(
    loaded: ModelEntry, roles: Sequence[ModelEntry], others_by_use: Sequence[ModelEntry]
) -> ModelEntry | None:
    """What to read ahead after ``loaded`` became ready: the other role, else the most
    recently used other model (``others_by_use``: most recent first)."""
    configured = [r for r in roles if r.configured]
    if loaded.role is not None:
        other = [r for r in configured if r.role != loaded.role and r.file != loaded.file]
        if other:
            return other[0]
    for e in others_by_use:
        if e.file != loaded.file and e.configured:
            return e
    return None


def read_ahead(path: Path, stop: threading.Event) -> int:
    """Read ``path`` sequentially (after asking the kernel to read ahead); bytes read."""
    done = 0
    with open(path, "rb", buffering=0) as f:
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while not stop.is_set():
            n = f.readinto(view)
            if not n:
                break
            done += n
    return done


class Prefetcher:
    """A core service: listens to the lifecycle and reads ahead in a worker thread."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        settings: SettingsSource,
        *,
        reader: Reader = read_ahead,
        available_ram: Callable[[], int] = lambda: int(psutil.virtual_memory().available),
    ) -> None:
        self._lifecycle = lifecycle
        self._settings = settings
        self._reader = reader
        self._available = available_ram
        self._stop = threading.Event()
        self._task: asyncio.Task[int] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.last: tuple[str, int, float] | None = None  # key, bytes, seconds of the last one

    async def start(self) -> None:
        self._unsubscribe = self._lifecycle.subscribe(self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        await self.cancel()

    async def cancel(self) -> None:
        """Stop a read under way (and wait for its thread to notice)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task})

    def _on_event(self, event: InstanceEvent) -> None:
        if event.new is ServerState.STARTING:
            self._stop.set()  # a load reads the disk now: never compete with it
        elif event.new is ServerState.READY and event.instance.entry is not None:
            target = self.next_for(event.instance.entry)
            if target is not None:
                asyncio.get_running_loop().create_task(self.prefetch(target))

    def next_for(self, loaded: ModelEntry) -> ModelEntry | None:
        """What is read ahead once ``loaded`` is ready: nothing unless PREFETCH is on and
        models take turns (switch), both as set now."""
        s = self._settings()
        return self._plan(loaded) if s.PREFETCH and s.RUN_MODE == "switch" else None

    def _plan(self, loaded: ModelEntry) -> ModelEntry | None:
        catalogue = self._lifecycle.catalogue
        others = sorted(
            (e for e in catalogue.entries() if e.role is None),
            key=self._lifecycle.last_used,
            reverse=True,
        )
        others = [e for e in others if self._lifecycle.last_used(e) > 0]
        return next_model(loaded, list(catalogue.roles().values()), others)

    async def prefetch(self, entry: ModelEntry) -> int:
        """Read ``entry``'s files ahead (replacing a read under way); bytes read."""
        await self.cancel()
        files = [*model_files(Path(entry.path)), *([Path(entry.mmproj)] if entry.mmproj else [])]
        try:
            size = sum(f.stat().st_size for f in files)
        except OSError as e:
            log.info("Not reading %s ahead: %s", entry.key, e)
            return 0
        if size * RAM_MARGIN > self._available():
            log.info("Not reading %s ahead: %d MB do not fit in free RAM", entry.key, size >> 20)
            return 0
        self._stop = stop = threading.Event()
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def read_all() -> int:
            return sum(self._reader(f, stop) for f in files if not stop.is_set())

        self._task = task = asyncio.ensure_future(loop.run_in_executor(None, read_all))
        try:
            done = await asyncio.shield(task)
        except Exception as e:
            log.warning("Reading %s ahead failed: %s", entry.key, e)
            return 0
        took = time.monotonic() - started
        if stop.is_set():
            log.info("Stopped reading %s ahead after %d MB", entry.key, done >> 20)
        else:
            log.info("Read %s ahead: %d MB in %.2f s", entry.key, done >> 20, took)
            self.last = (entry.key, done, took)
        return done
