"""Reading the next model ahead: what is next, the RAM check, and stopping for a load."""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

import pytest

from app.core.lifecycle.prefetch import (
    Prefetcher,
    next_model,
    read_ahead,
    read_missing,
    resident_pages,
)
from app.core.models.entry import ModelEntry

V = ModelEntry("vision-key", "/m/v.gguf", mmproj="/m/p.gguf", role="vision", port=1)
L = ModelEntry("llm-key", "/m/l.gguf", role="llm", port=2)
UNSET = ModelEntry("", "", role="vision", port=1)
A = ModelEntry("a", "/m/a.gguf")
B = ModelEntry("b", "/m/b.gguf")


@pytest.mark.parametrize(
    ("loaded", "roles", "others", "expect"),
    [
        (V, [V, L], [A, B], L),  # a role: the other role
        (L, [V, L], [A], V),
        (L, [UNSET, L], [A, B], A),  # the other role is not set: the most recent other
        (A, [V, L], [B, A], B),  # not a role: the most recently used other model
        (A, [UNSET], [A], None),  # nothing else known
    ],
)
def test_next_model(loaded, roles, others, expect) -> None:
    assert next_model(loaded, roles, others) == expect


def test_read_ahead_reads_all_and_stops_when_told(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * (20 * 1024 * 1024 + 5))
    assert read_ahead(f, threading.Event()) == f.stat().st_size
    stop = threading.Event()
    stop.set()
    assert read_ahead(f, stop) == 0


def _drop_cache(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    pages = resident_pages(path)
    return pages is not None and pages.count(1) == 0


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise")
def test_read_ahead_reads_only_what_is_not_in_memory(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(os.urandom(3 * 8 * 1024 * 1024 + 5))
    size = f.stat().st_size
    pages = resident_pages(f)
    assert pages is not None and len(pages) == -(-size // mmap.PAGESIZE)
    if not _drop_cache(f):
        pytest.skip("this file system keeps the pages (tmpfs)")
    assert read_missing(f, threading.Event()) == (size, size)  # cold: every byte read
    assert resident_pages(f).count(0) == 0
    assert read_missing(f, threading.Event()) == (size, 0)  # warm: nothing read again
    # the middle chunk dropped: only it is read
    fd = os.open(f, os.O_RDONLY)
    os.posix_fadvise(fd, 8 * 1024 * 1024, 8 * 1024 * 1024, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    assert read_missing(f, threading.Event()) == (size, 8 * 1024 * 1024)


class _Lifecycle:
    """What the prefetcher reads of the lifecycle (subscribe is not needed here)."""


async def test_prefetch_respects_free_ram_and_reads_the_files(tmp_path: Path) -> None:
    model = tmp_path / "next.gguf"
    model.write_bytes(b"y" * 1000)
    mmproj = tmp_path / "mmproj.gguf"
    mmproj.write_bytes(b"z" * 10)
    entry = ModelEntry("next", str(model), mmproj=str(mmproj))
    read: list[Path] = []

    def reader(path: Path, stop: threading.Event) -> int:
        read.append(path)
        return path.stat().st_size

    tight = Prefetcher(_Lifecycle(), lambda: None, reader=reader, available_ram=lambda: 1000)
    assert await tight.prefetch(entry) == 0 and read == []  # 1010 B x 1.25 > 1000 B free
    roomy = Prefetcher(_Lifecycle(), lambda: None, reader=reader, available_ram=lambda: 10**9)
    assert await roomy.prefetch(entry) == 1010
    assert read == [model, mmproj] and roomy.last[:2] == ("next", 1010)
