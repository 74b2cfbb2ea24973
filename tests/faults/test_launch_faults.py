"""Faults while loading a model: each gives the user a message to act on, leaves a true
state, nothing running and the whole log."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.lifecycle.instance import LoadFailedError
from app.core.models.entry import LLM, VISION
from app.core.notices import Level
from app.core.servers.manager import ServerExitedError
from app.core.servers.states import ServerState
from tests.conftest import llama_children
from tests.support.app import load_role, notice
from tests.support.fakes import never_ready_server, nonsense_binary


@contextlib.contextmanager
def load_fails(cause: type[BaseException]):
    """The lifecycle answers ``LoadFailedError`` (the API's 503) caused by ``cause``."""
    with pytest.raises(LoadFailedError) as err:
        yield err
    assert isinstance(err.value.__cause__, cause), repr(err.value.__cause__)


def failed(core, role: str):
    """The "Loading <title> (<key>) failed" notice for a role model."""
    entry = core.catalogue.role(role)
    return notice(core, f"Loading {entry.title} ({entry.key}) failed")


def assert_nothing_running(core) -> None:
    assert core.manager.get_loaded_models() == {}
    assert llama_children() == []
    assert not core.paths.ownership_file.exists()


async def test_missing_binary(app, tiny_model, tmp_path) -> None:
    core = app(
        LLAMA_SERVER_PATH=str(tmp_path / "nope" / "llama-server"), LLM_MODEL_GGUF=str(tiny_model)
    )
    await core.start()
    with load_fails(FileNotFoundError):
        await load_role(core, LLM)
    n = failed(core, LLM)
    assert n.level is Level.ERROR
    assert f"llama-server not found: {tmp_path / 'nope' / 'llama-server'}" in n.text
    assert "LLAMA_SERVER_PATH" in n.text
    assert core.manager.status(core.catalogue.role(LLM).port).state is ServerState.STOPPED
    assert_nothing_running(core)


async def test_binary_not_executable(app, tiny_model, tmp_path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o644)
    core = app(LLAMA_SERVER_PATH=str(binary), LLM_MODEL_GGUF=str(tiny_model))
    await core.start()
    with load_fails(PermissionError):
        await load_role(core, LLM)
    n = failed(core, LLM)
    assert f"llama-server at {binary} is not executable" in n.text
    assert f"chmod +x '{binary}'" in n.text
    assert core.manager.status(core.catalogue.role(LLM).port).state is ServerState.STOPPED
    assert_nothing_running(core)


async def test_binary_that_is_not_llama_server(app, tiny_model, tmp_path) -> None:
    core = app(
        LLAMA_SERVER_PATH=str(nonsense_binary(tmp_path / "llama-server")),
        LLM_MODEL_GGUF=str(tiny_model),
    )
    await core.start()
    port = core.catalogue.role(LLM).port
    with load_fails(ServerExitedError):
        await load_role(core, LLM)
    n = failed(core, LLM)
    assert f"llama-server on port {port} exited with code 3 while loading" in n.text
    assert "this is not llama-server" in n.text  # its own words, from the log
    assert n.log_path == core.log_path(port)
    st = core.manager.status(port)
    assert st.state is ServerState.FAILED and st.exit_code == 3
    log = core.log_path(port).read_text()
    assert "familylog-tray start:" in log and "this is not llama-server" in log
    assert "exited with code 3" in log
    assert_nothing_running(core)


async def test_missing_model(app, tmp_path) -> None:
    missing = tmp_path / "models" / "gone.gguf"
    core = app(LLM_MODEL_GGUF=str(missing))
    await core.start()
    assert core.catalogue.role(LLM).problem() == f"Model file not found: {missing}"
    # checked before anything starts: the lifecycle refuses with the same words
    with pytest.raises(LoadFailedError, match=f"Model file not found: {missing}"):
        await load_role(core, LLM)
    assert failed(core, LLM).text == f"Model file not found: {missing}"
    assert core.manager.status(core.catalogue.role(LLM).port).state is ServerState.STOPPED
    assert_nothing_running(core)


async def test_missing_mmproj(app, tiny_model, tmp_path) -> None:
    missing = tmp_path / "mmproj-gone.gguf"
    core = app(VISION_MODEL_GGUF=str(tiny_model), VISION_MMPROJ=str(missing))
    await core.start()
    with pytest.raises(LoadFailedError, match=f"mmproj file not found: {missing}"):
        await load_role(core, VISION)
    assert failed(core, VISION).text == f"mmproj file not found: {missing}"
    assert core.manager.status(core.catalogue.role(VISION).port).state is ServerState.STOPPED
    assert_nothing_running(core)


async def test_corrupt_gguf(app, corrupt_model) -> None:
    core = app(LLM_MODEL_GGUF=str(corrupt_model))
    await core.start()
    port = core.catalogue.role(LLM).port
    with load_fails(ServerExitedError):
        await load_role(core, LLM)
    n = failed(core, LLM)
    assert f"exited with code 1 while loading {corrupt_model}" in n.text
    assert str(core.log_path(port)) in n.text and "Last lines:" in n.text
    assert core.manager.status(port).state is ServerState.FAILED
    log = core.log_path(port).read_text()
    assert "failed to load model" in log and "exited with code 1" in log
    assert_nothing_running(core)


async def test_server_exits_during_load(app, tiny_model) -> None:
    # A real failure mid-load: the model loads, then the "projector" is not one.
    core = app(VISION_MODEL_GGUF=str(tiny_model), VISION_MMPROJ=str(tiny_model))
    await core.start()
    port = core.catalogue.role(VISION).port
    with load_fails(ServerExitedError):
        await load_role(core, VISION)
    n = failed(core, VISION)
    assert f"exited with code 1 while loading {tiny_model}" in n.text
    assert "mmproj" in n.text  # llama-server's own last words, from the log
    assert "familylog-tray:" not in n.text
    assert core.manager.status(port).state is ServerState.FAILED
    log = core.log_path(port).read_text()
    assert "Failed to load CLIP model" in log and "exited with code 1" in log
    assert_nothing_running(core)


async def test_never_ready(app, tiny_model, tmp_path) -> None:
    core = app(
        LLAMA_SERVER_PATH=str(never_ready_server(tmp_path / "llama-server")),
        LLM_MODEL_GGUF=str(tiny_model),
        LLAMA_READY_TIMEOUT=0.5,
    )
    await core.start()
    port = core.catalogue.role(LLM).port
    with load_fails(TimeoutError):
        await load_role(core, LLM)
    n = failed(core, LLM)
    assert (
        f"did not become ready within 0.5 s and was stopped. Read {core.log_path(port)}" in n.text
    )
    st = core.manager.status(port)
    assert st.state is ServerState.FAILED and st.pid is None
    log = core.log_path(port).read_text()
    assert "loading model forever" in log and "exited with code" in log
    assert_nothing_running(core)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_disk_full_while_writing_the_log(app, tiny_model) -> None:
    """A full log disk pauses the server's logging, with a notice; the load goes on."""
    # /dev/full fails every write with ENOSPC, exactly as a full disk does.
    core = app(LLM_MODEL_GGUF=str(tiny_model))
    await core.start()
    port = core.catalogue.role(LLM).port
    log_path = core.log_path(port)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.symlink_to("/dev/full")
    st = await load_role(core, LLM)
    assert st.state is ServerState.READY
    assert st.log_problem and "No space left on device" in st.log_problem
    n = notice(core, "Logging paused")
    assert n.text.startswith(
        f"Cannot write the llama-server log {log_path}: No space left on device."
    )
    assert "runs without its log until it is loaded again" in n.text and "free disk space" in n.text
    # Its log comes back with its next load, once there is room.
    await core.lifecycle.unload_all()
    log_path.unlink()
    st = await load_role(core, LLM)
    assert st.state is ServerState.READY and st.log_problem is None
    assert "familylog-tray start:" in Path(log_path).read_text()


EFBIG_SCRIPT = r"""
import asyncio, json, resource, signal, sys
from app.core.models.entry import LLM
from tests.support.app import load_role, make_core, settings_for

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG

async def main():
    core = make_core(settings_for(sys.argv[1], LLM_MODEL_GGUF=sys.argv[2]))
    await core.start()
    log_path = core.log_path(core.catalogue.role(LLM).port)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"earlier output\n" * 300)
    size = log_path.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    try:
        await load_role(core, LLM)
        error = None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    state = core.manager.status(core.catalogue.role(LLM).port).state
    await core.stop()
    print(json.dumps({"error": error, "state": state, "notice": core.notices.history[-1].text,
                      "kept": log_path.stat().st_size == size}))

asyncio.run(main())
"""


def test_file_size_limit_while_writing_the_log(llama_server_bin, tiny_model) -> None:
    # The other way a log write fails: EFBIG under a file-size limit (RLIMIT_FSIZE), set in
    # a child process so the test runner keeps its own limits. The model loads all the same.
    p = subprocess.run(
        [sys.executable, "-c", EFBIG_SCRIPT, llama_server_bin, str(tiny_model)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["error"] is None
    assert out["state"] == "ready"
    assert "Cannot write the llama-server log" in out["notice"]
    assert "File too large" in out["notice"]
    assert out["kept"]  # what the log held before is still there
