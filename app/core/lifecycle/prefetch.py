"""Read the model most likely needed next into the page cache while the current one serves
(switch mode), so a switch to it does not wait for the disk.

Most likely next: the other FamilyLog role when a role is loaded, else the most recently
used other model. Only when the available RAM covers the file with a margin; stopped the
moment another load starts (that load reads the disk) or the plan changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import mmap
import os
import sys
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


_RESIDENT = bytes(b & 1 for b in range(256))  # mincore's vector: the low bit of each byte


def _libc():
    if sys.platform == "win32":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]  # fmt: skip
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def resident_pages(path: Path) -> bytes | None:
    """One byte per page of ``path``: 1 where the page is in the page cache now (``mincore``
    on a mapping that is never touched), or None where that cannot be asked (Windows)."""
    libc = _LIBC
    if libc is None:
        return None
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return b""
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vec = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
            if libc.mincore(addr, size, vec) != 0:
                return None
            return vec.raw.translate(_RESIDENT)
        finally:
            libc.munmap(addr, size)


def read_ahead(path: Path, stop: threading.Event) -> int:
    """Bring ``path`` into the page cache; the bytes covered (read, or found there)."""
    return read_missing(path, stop)[0]


def read_missing(path: Path, stop: threading.Event) -> tuple[int, int]:
    """Read sequentially (after asking the kernel to read ahead) the chunks of ``path`` not
    all in the page cache yet, so a file still cached from its last use costs a ``mincore``
    (about 0.1 s for 2.4 GB on a busy machine) instead of copying every byte again on a
    core the model being served needs. Returns (bytes covered, bytes read)."""
    done = read = 0
    try:
        resident = resident_pages(path)
    except OSError:
        resident = None
    pages_per_chunk = CHUNK // mmap.PAGESIZE
    with open(path, "rb", buffering=0) as f:
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        size = os.fstat(f.fileno()).st_size
        while not stop.is_set() and done < size:
            if resident is not None:
                first = done // mmap.PAGESIZE
                if resident.find(0, first, first + pages_per_chunk) < 0:
                    done += min(CHUNK, size - done)  # all in memory already
                    continue
                f.seek(done)
            n = f.readinto(view)
            if not n:
                break
            done += n
            read += n
    return done, read


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
        """Read ``entry``'s files ahead (replacing a read under way); the bytes now in the page
        cache (read, or found there)."""
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
