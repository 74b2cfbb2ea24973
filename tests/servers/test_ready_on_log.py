"""Ready on the spot: the server's own "listening on" line ends the wait between probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.servers import health
from app.core.servers.health import LogWatch
from app.core.servers.manager import LlamaServerManager
from app.core.servers.states import ServerState


def test_log_watch_reads_only_new_lines_and_tells_once(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_bytes(b"old run: listening on http://127.0.0.1:1\n")
    w = LogWatch(log, log.stat().st_size)  # an earlier start's line does not count
    assert not w.ready_now()
    with log.open("ab") as f:
        f.write(b"load_tensors: ... main: server is listen")
    assert not w.ready_now()
    with log.open("ab") as f:
        f.write(b"ing on http://127.0.0.1:8080\n")  # the mark split across two reads
    assert w.ready_now()
    assert not w.ready_now()  # once


def test_log_watch_starts_over_after_truncation(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_bytes(b"x" * 100)
    w = LogWatch(log, 100)
    log.write_bytes(b"update_slots: all slots are idle\n")  # shorter than before
    assert w.ready_now()


def test_missing_log_is_not_ready(tmp_path: Path) -> None:
    assert not LogWatch(tmp_path / "none.log", 0).ready_now()


async def test_the_log_line_wakes_the_wait(
    monkeypatch: pytest.MonkeyPatch, llama_server_bin, tiny_model, port, tmp_path
) -> None:
    """With the back-off set to an hour, only the log line can end the wait in time: the
    load completes (it would time out without it)."""
    monkeypatch.setattr(health, "FIRST_INTERVAL", 3600.0)
    monkeypatch.setattr(health, "MAX_INTERVAL", 3600.0)
    m = LlamaServerManager(llama_server_bin, log_dir=tmp_path / "logs")
    try:
        st = await m.load_model(str(tiny_model), port=port, ctx_size=512, timeout=60)
        assert st.state is ServerState.READY
    finally:
        await m.shutdown()


def test_a_mark_is_told_once_and_only_new_marks_count(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_bytes(b"")
    w = LogWatch(log, 0)
    assert not w.started
    with log.open("ab") as f:
        f.write(b"main: server is listening on http://127.0.0.1:1\n")
    assert w.ready_now() and w.started
    with log.open("ab") as f:
        f.write(b"srv load_model: loading\n")  # the old mark is still in the kept tail
    assert not w.ready_now()
    with log.open("ab") as f:
        f.write(b"update_slots: all slots are idle\n")
    assert w.ready_now()
