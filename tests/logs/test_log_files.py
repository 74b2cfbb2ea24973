"""The app's own rotating log and the per-port llama-server log rotation, on real files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.core.logs.app_logging import installed_log_file, setup_logging
from app.core.servers.manager import LlamaServerManager
from app.core.servers.server_log import open_server_log, rotate_if_large

CTX = 512


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_rotate_if_large_keeps_n_backups(tmp_path: Path) -> None:
    tmp_path = tmp_path / "logs"
    tmp_path.mkdir()
    log = tmp_path / "llama-server-8080.log"
    for gen in range(5):
        log.write_bytes(f"generation {gen}\n".encode() * 100)
        assert rotate_if_large(log, 1000, backups=3)
        assert not log.exists()
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [f"{log.name}.{i}" for i in (1, 2, 3)]
    assert (tmp_path / f"{log.name}.1").read_text().startswith("generation 4")
    assert (tmp_path / f"{log.name}.3").read_text().startswith("generation 2")


def test_rotate_if_large_leaves_small_or_missing_files(tmp_path: Path) -> None:
    tmp_path = tmp_path / "logs"
    tmp_path.mkdir()
    log = tmp_path / "x.log"
    assert not rotate_if_large(log, 10, 3)
    log.write_text("small\n")
    assert not rotate_if_large(log, 1000, 3)
    assert log.read_text() == "small\n"
    log.write_text("x" * 2000)
    assert rotate_if_large(log, 1000, backups=0)
    assert list(tmp_path.iterdir()) == []


def test_open_server_log_rotates_then_writes_a_header(tmp_path: Path) -> None:
    log = tmp_path / "llama-server-9.log"
    log.write_text("old run\n" * 1000)
    with open_server_log(log, ["llama-server", "--api-key", "s3cret"], 4096, 2) as f:
        f.write(b"new run\n")
    text = log.read_text()
    assert "familylog-tray start: llama-server --api-key '***'" in text
    assert "s3cret" not in text and "old run" not in text
    assert log.with_name(log.name + ".1").read_text().startswith("old run")


async def test_manager_rotates_a_large_server_log_at_start(
    llama_server_bin: str, tiny_model: Path, port: int, app_home: Path
) -> None:
    m = LlamaServerManager(
        llama_server_bin, log_dir=app_home / "logs", log_max_bytes=4096, log_backups=2
    )
    log = m.log_path(port)
    log.parent.mkdir(parents=True)
    log.write_text("previous run line\n" * 1000)
    try:
        await m.load_model(str(tiny_model), port=port, ctx_size=CTX, timeout=60)
    finally:
        await m.shutdown()
    assert log.with_name(log.name + ".1").read_text().startswith("previous run line")
    text = log.read_text()
    assert "previous run line" not in text
    assert "model loaded" in text and "exited with code" in text


def test_app_log_goes_to_a_rotating_file(tmp_path: Path, restore_root_logging) -> None:
    path = tmp_path / "logs" / "familylog-tray.log"
    setup_logging(path, max_bytes=2048, backups=2, console=False)
    assert installed_log_file() == path
    for i in range(200):
        logging.getLogger("app.test").warning("message %03d", i)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == [path.name, path.name + ".1", path.name + ".2"]
    assert "WARNING app.test: message 199" in path.read_text()
    assert all(p.stat().st_size <= 2048 + 200 for p in path.parent.iterdir())


def test_a_failed_load_is_logged_with_its_reason(
    llama_server_bin: str, corrupt_model: Path, port: int, app_home: Path, caplog
) -> None:
    import asyncio

    m = LlamaServerManager(llama_server_bin, log_dir=app_home / "logs")

    async def go() -> None:
        try:
            with pytest.raises(RuntimeError):
                await m.load_model(str(corrupt_model), port=port, ctx_size=CTX, timeout=60)
            with pytest.raises(FileNotFoundError):
                await m.load_model(str(app_home / "missing.gguf"), port=port)
        finally:
            await m.shutdown()

    with caplog.at_level(logging.INFO, logger="app.core.servers.manager"):
        asyncio.run(go())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"Port {port}: starting -> failed" in e and "exited with code" in e for e in errors)
    assert any("Model file not found" in e and "missing.gguf" in e for e in errors)
