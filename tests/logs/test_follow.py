"""LogFollower against real files: appends, partial writes, truncation, rotation, recreation."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
from pathlib import Path

import pytest

from app.core.logs.log_follow import FollowHandle, LogFollower, read_last_lines, start_follow
from tests.support.wait import until

DEADLINE = 20.0


class Collector:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.batches = 0

    def __call__(self, batch: list[str]) -> None:
        assert isinstance(batch, list) and batch, "batches are non-empty lists"
        self.batches += 1
        self.lines.extend(batch)


async def idle_polls(h: FollowHandle, n: int = 2) -> None:
    """Wait until the follower has looked at the file ``n`` more times."""
    start = h.follower.polls
    await until(lambda: h.follower.polls >= start + n)


def write(path: Path, data: bytes | str, mode: str = "ab") -> None:
    with open(path, mode) as f:
        f.write(data.encode() if isinstance(data, str) else data)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "server.log"


@pytest.fixture
async def follow(log_file: Path):
    handles: list[FollowHandle] = []

    def start(path: Path = log_file, **kw) -> tuple[FollowHandle, Collector]:
        c = Collector()
        h = start_follow(path, c, **kw)
        handles.append(h)
        return h, c

    yield start
    for h in handles:
        await asyncio.wait_for(h.wait_stopped(), DEADLINE)
        assert h.follower._file is None, "the file is closed when the follower stops"


async def test_starts_from_last_n_lines_and_keeps_the_partial_one(follow, log_file) -> None:
    write(log_file, "".join(f"old {i}\n" for i in range(100)) + "part")
    h, c = follow(last_lines=5)
    await until(lambda: len(c.lines) >= 5)
    assert c.lines == [f"old {i}" for i in range(95, 100)]
    write(log_file, "ial\nnext\n")
    await until(lambda: len(c.lines) >= 7)
    assert c.lines[5:] == ["partial", "next"]


async def test_last_lines_from_a_file_longer_than_one_block(tmp_path: Path) -> None:
    p = tmp_path / "big.log"
    write(p, "".join(f"line {i:06d} " + "x" * 80 + "\n" for i in range(5000)))
    with open(p, "rb") as f:
        lines, tail, end = read_last_lines(f, 3000, 10 << 20)
    assert [x.decode()[:11] for x in lines] == [f"line {i:06d}" for i in range(2000, 5000)]
    assert tail == b"" and end == p.stat().st_size


async def test_appended_lines_arrive_in_order(follow, log_file) -> None:
    log_file.write_text("")
    h, c = follow()
    await idle_polls(h)
    for i in range(50):
        write(log_file, f"line {i}\n")
    await until(lambda: len(c.lines) >= 50)
    assert c.lines == [f"line {i}" for i in range(50)]


async def test_a_partial_line_waits_for_its_newline(follow, log_file) -> None:
    log_file.write_text("")
    h, c = follow()
    write(log_file, "0.00.001.000 I srv  load_mo")
    await idle_polls(h, 3)
    assert c.lines == []
    write(log_file, "del: loading\nsecond ")
    await until(lambda: len(c.lines) >= 1)
    await idle_polls(h, 2)
    assert c.lines == ["0.00.001.000 I srv  load_model: loading"]
    write(log_file, "half\n")
    await until(lambda: len(c.lines) >= 2)
    assert c.lines[1] == "second half"


async def test_a_utf8_sequence_split_between_writes_is_decoded_whole(follow, log_file) -> None:
    log_file.write_text("")
    h, c = follow()
    text = "модель загружена ✓\n".encode()
    cut = text.index("✓".encode()) + 1  # inside the 3-byte sequence
    write(log_file, text[:cut])
    await idle_polls(h, 3)
    write(log_file, text[cut:])
    await until(lambda: len(c.lines) >= 1)
    assert c.lines == ["модель загружена ✓"]


async def test_invalid_utf8_is_replaced_not_fatal(follow, log_file) -> None:
    log_file.write_text("")
    h, c = follow()
    write(log_file, b"bad \xff\xfe bytes\r\nfine\n")
    await until(lambda: len(c.lines) >= 2)
    assert c.lines == ["bad \ufffd\ufffd bytes", "fine"]


async def test_truncation_reads_again_from_the_top(follow, log_file) -> None:
    write(log_file, "a\nb\nc\n")
    h, c = follow()
    await until(lambda: len(c.lines) >= 3)
    with open(log_file, "r+b") as f:
        f.truncate(0)
    await idle_polls(h, 2)
    write(log_file, "after\n")
    await until(lambda: "after" in c.lines)
    assert c.lines == ["a", "b", "c", "after"]
    assert h.follower.rotations == 1


async def test_rotation_drains_the_old_file_then_follows_the_new(follow, log_file) -> None:
    writer = open(log_file, "ab", buffering=0)  # noqa: SIM115
    try:
        writer.write(b"one\n")
        h, c = follow()
        await until(lambda: c.lines == ["one"])
        os.replace(log_file, log_file.with_name(log_file.name + ".1"))
        writer.write(b"two, written to the rotated file\nunfinished")
        writer.close()
        write(log_file, "three, in the new file\n")
        await until(lambda: len(c.lines) >= 4)
        assert c.lines == [
            "one",
            "two, written to the rotated file",
            "unfinished",
            "three, in the new file",
        ]
        assert h.follower.rotations == 1
    finally:
        writer.close()


async def test_deleted_then_recreated(follow, log_file) -> None:
    write(log_file, "first life\n")
    h, c = follow()
    await until(lambda: c.lines == ["first life"])
    log_file.unlink()
    await idle_polls(h, 2)
    write(log_file, "second life\n")
    await until(lambda: len(c.lines) >= 2)
    assert c.lines == ["first life", "second life"]


async def test_a_file_that_does_not_exist_yet_is_read_from_its_start(follow, log_file) -> None:
    h, c = follow(last_lines=1)
    await idle_polls(h, 2)
    write(log_file, "l1\nl2\nl3\n")
    await until(lambda: len(c.lines) >= 3)
    assert c.lines == ["l1", "l2", "l3"]


async def test_a_backlog_comes_in_bounded_batches(follow, log_file) -> None:
    log_file.write_text("")
    h, c = follow(read_chunk=4096)
    await idle_polls(h)
    n = 20_000
    write(log_file, "".join(f"{i}\n" for i in range(n)))
    await until(lambda: len(c.lines) >= n)
    assert c.lines == [str(i) for i in range(n)]
    assert c.batches > 10


async def test_a_runaway_line_is_shown_in_pieces(follow, log_file) -> None:
    log_file.write_text("")
    h, c = follow(max_line_bytes=1000)
    await idle_polls(h)
    write(log_file, "x" * 5000)
    await until(lambda: len(c.lines) >= 1)
    assert all(len(x) <= 5000 for x in c.lines)
    assert h.follower._carry == b""


async def test_windows_mode_reopens_per_read(follow, log_file) -> None:
    write(log_file, "a\n")
    h, c = follow(hold_open=False)
    await until(lambda: c.lines == ["a"])
    assert h.follower._file is None
    os.replace(log_file, log_file.with_name("rotated.log"))
    write(log_file, "b\n")
    await until(lambda: len(c.lines) >= 2)
    assert c.lines == ["a", "b"]


async def test_stop_ends_the_iteration(log_file) -> None:
    log_file.write_text("x\n")
    f = LogFollower(log_file, max_interval=30)
    got: list[list[str]] = []

    async def consume() -> None:
        async for batch in f:
            got.append(batch)

    task = asyncio.create_task(consume())
    await until(lambda: got == [["x"]])
    f.stop()
    await asyncio.wait_for(task, DEADLINE)  # not 30 s: stop() wakes the sleeping poll
    assert f._file is None
    with pytest.raises(RuntimeError):
        async for _ in f:
            pass


async def test_follows_the_apps_rotating_log_without_losing_a_record(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=4096, backupCount=50, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.logs.rotating")
    logger.propagate = False
    logger.addHandler(handler)
    c = Collector()
    h = start_follow(path, c)
    try:
        # Bursts smaller than the size cap, so that the file rotates at most once between
        # two polls (a follower cannot see a file that was rotated away twice meanwhile).
        n = 2000
        for i in range(n):
            logger.warning("record %04d — ünïcode", i)
            if i % 100 == 99:
                await until(lambda i=i: len(c.lines) >= i + 1)
        assert c.lines == [f"record {i:04d} — ünïcode" for i in range(n)]
        assert h.follower.rotations >= 10
    finally:
        logger.removeHandler(handler)
        handler.close()
        await h.wait_stopped()
