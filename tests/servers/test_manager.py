"""LlamaServerManager against the real llama-server binary and a generated GGUF."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from app.core.servers.manager import LlamaServerManager, ServerExitedError
from app.core.servers.ports import PortInUseError
from app.core.servers.states import ServerState, StateEvent
from tests.conftest import free_port
from tests.support.fakes import never_ready_server, nonsense_binary

CTX = 512


@pytest.fixture
async def manager(llama_server_bin: str, app_home: Path):
    m = LlamaServerManager(llama_server_bin, log_dir=app_home / "logs")
    yield m
    await m.shutdown()
    assert m.get_loaded_models() == {}


def record_events(m: LlamaServerManager) -> list[StateEvent]:
    events: list[StateEvent] = []
    m.subscribe(events.append)
    return events


def states(events: list[StateEvent], port: int) -> list[ServerState]:
    out: list[ServerState] = []
    for e in events:
        if e.port == port and (not out or out[-1] != e.new):
            out.append(e.new)
    return out


async def chat(port: int) -> dict:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        )
    assert r.status_code == 200, r.text
    return r.json()


async def test_load_chat_unload(manager, tiny_model, port) -> None:
    events = record_events(manager)
    status = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    assert status.state is ServerState.READY
    assert manager.get_loaded_models() == {port: str(tiny_model)}
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{port}/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    body = await chat(port)
    assert body["choices"][0]["message"]["role"] == "assistant"
    pid = status.pid
    assert psutil.pid_exists(pid)
    cmd = psutil.Process(pid).cmdline()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"

    await manager.unload_model(port)
    assert manager.get_loaded_models() == {}
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert states(events, port) == [
        ServerState.STARTING,
        ServerState.READY,
        ServerState.STOPPING,
        ServerState.STOPPED,
    ]
    log = (manager.log_dir / f"llama-server-{port}.log").read_text()
    assert "familylog-tray start:" in log and str(tiny_model) in log
    assert "listening on" in log


async def test_log_is_appended_with_a_header_per_start(manager, tiny_model, port) -> None:
    for _ in range(2):
        await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
        await manager.unload_model(port)
    log = manager.log_path(port).read_text()
    assert log.count("familylog-tray start:") == 2
    assert log.count("exited with code") == 2


async def test_same_model_twice_is_one_process(manager, tiny_model, port) -> None:
    a = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    b = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    assert a.pid == b.pid


async def test_switch_model(manager, tiny_model, tiny_model_b, port) -> None:
    events = record_events(manager)
    first = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    second = await manager.switch_model(port, str(tiny_model_b), ctx_size=CTX)
    assert second.pid != first.pid
    assert not psutil.pid_exists(first.pid) or (
        psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE
    )
    assert manager.get_loaded_models() == {port: str(tiny_model_b)}
    async with httpx.AsyncClient() as c:
        props = (await c.get(f"http://127.0.0.1:{port}/props")).json()
    assert Path(props["model_path"]).name == tiny_model_b.name
    assert states(events, port) == [
        ServerState.STARTING,
        ServerState.READY,
        ServerState.STOPPING,
        ServerState.STOPPED,
        ServerState.STARTING,
        ServerState.READY,
    ]


async def test_two_ports_at_once(manager, tiny_model, tiny_model_b, port, port2) -> None:
    await asyncio.gather(
        manager.load_model(str(tiny_model), port=port, ctx_size=CTX),
        manager.load_model(str(tiny_model_b), port=port2, ctx_size=CTX),
    )
    assert manager.get_loaded_models() == {port: str(tiny_model), port2: str(tiny_model_b)}
    await asyncio.gather(chat(port), chat(port2))
    await manager.unload_model(port)
    assert manager.get_loaded_models() == {port2: str(tiny_model_b)}
    await chat(port2)


async def test_concurrent_calls_on_one_port_are_serialised(
    manager, tiny_model, tiny_model_b, port
) -> None:
    spawned: list[int] = []
    manager.subscribe(
        lambda e: spawned.append(e.status.pid) if e.new is ServerState.STARTING else None
    )
    results = await asyncio.gather(
        *(manager.load_model(str(tiny_model), port=port, ctx_size=CTX) for _ in range(5))
    )
    assert len({r.pid for r in results}) == 1 and len(spawned) == 1
    # load, unload and switch racing: each runs whole, never two processes on the port
    await asyncio.gather(
        manager.unload_model(port),
        manager.switch_model(port, str(tiny_model_b), ctx_size=CTX),
        manager.load_model(str(tiny_model), port=port, ctx_size=CTX),
    )
    holders = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE and str(port) in p.cmdline()
    ]
    assert len(holders) == 1
    assert manager.get_loaded_models() == {port: str(tiny_model)}


def test_missing_binary_is_named(tmp_path) -> None:
    missing = tmp_path / "nope" / "llama-server"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        LlamaServerManager(str(missing), log_dir=tmp_path)


async def test_binary_removed_after_start_is_named(tmp_path, tiny_model, port) -> None:
    m = LlamaServerManager(str(tmp_path / "gone"), log_dir=tmp_path, check_binary=False)
    with pytest.raises(FileNotFoundError, match="gone"):
        await m.load_model(str(tiny_model), port=port)


async def test_missing_model_and_mmproj_are_named(manager, tiny_model, tmp_path, port) -> None:
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        await manager.load_model(str(tmp_path / "missing.gguf"), port=port)
    with pytest.raises(FileNotFoundError, match="mmproj-missing.gguf"):
        await manager.load_model(
            str(tiny_model), port=port, mmproj=str(tmp_path / "mmproj-missing.gguf")
        )
    assert manager.get_loaded_models() == {}


async def test_corrupt_gguf_fails_clearly(manager, corrupt_model, port) -> None:
    with pytest.raises(ServerExitedError) as info:
        await manager.load_model(str(corrupt_model), port=port, ctx_size=CTX)
    msg = str(info.value)
    assert f"port {port}" in msg and "exited with code" in msg
    assert str(manager.log_path(port)) in msg
    st = manager.status(port)
    assert st.state is ServerState.FAILED and st.exit_code not in (None, 0)
    assert manager.get_loaded_models() == {}


async def test_port_held_by_another_process(manager, tiny_model, port) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])));"
            "s.listen(); print('up', flush=True); time.sleep(60)",
            str(port),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"up"
        with pytest.raises(PortInUseError) as info:
            await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
        msg = str(info.value)
        assert f"Port {port}" in msg
        assert f"PID {holder.pid}" in msg
        assert manager.status(port).state is ServerState.FAILED
    finally:
        holder.kill()
        holder.wait()


async def test_never_ready_times_out_and_leaves_nothing(tmp_path, tiny_model, port) -> None:
    fake = never_ready_server(tmp_path / "llama-server")
    m = LlamaServerManager(str(fake), log_dir=tmp_path / "logs")
    with pytest.raises(TimeoutError) as info:
        await m.load_model(str(tiny_model), port=port, timeout=0.5)
    assert str(m.log_path(port)) in str(info.value)
    assert m.status(port).state is ServerState.FAILED
    assert m.get_loaded_models() == {}
    assert "loading model forever" in m.log_path(port).read_text()


async def test_stop_kills_a_server_that_ignores_sigterm(tmp_path, tiny_model, port) -> None:
    fake = never_ready_server(tmp_path / "llama-server", ignore_term=True)
    m = LlamaServerManager(str(fake), log_dir=tmp_path / "logs", stop_timeout=0.3)
    with pytest.raises(TimeoutError):
        await m.load_model(str(tiny_model), port=port, timeout=0.5)
    log = m.log_path(port).read_text()
    assert "killed PID" in log and "exited with code -9" in log


async def test_not_llama_server_fails_with_its_exit_code(tmp_path, tiny_model, port) -> None:
    fake = nonsense_binary(tmp_path / "llama-server")
    m = LlamaServerManager(str(fake), log_dir=tmp_path / "logs")
    with pytest.raises(ServerExitedError, match="exited with code 3") as info:
        await m.load_model(str(tiny_model), port=port)
    assert "this is not llama-server" in str(info.value)


async def test_not_executable_binary(tmp_path, tiny_model, port) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o644)
    m = LlamaServerManager(str(fake), log_dir=tmp_path / "logs")
    with pytest.raises(PermissionError, match="not executable"):
        await m.load_model(str(tiny_model), port=port)


async def test_server_killed_externally_is_detected(manager, tiny_model, port) -> None:
    status = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    failed = asyncio.get_running_loop().create_future()
    manager.subscribe(
        lambda e: (
            failed.set_result(e) if e.new is ServerState.FAILED and not failed.done() else None
        )
    )
    dead = psutil.Process(status.pid)
    os.kill(status.pid, signal.SIGKILL)
    event = await asyncio.wait_for(failed, 10)
    assert event.old is ServerState.READY
    assert event.status.exit_code == -signal.SIGKILL
    assert "exited unexpectedly with code -9" in event.status.error
    assert manager.get_loaded_models() == {}
    # it really crashed: the process is gone and nothing answers on its port
    assert not dead.is_running() or dead.status() == psutil.STATUS_ZOMBIE
    with pytest.raises(httpx.TransportError):
        await chat(port)
    # the port can be loaded again after a crash: a new process that answers
    again = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    assert again.state is ServerState.READY and again.pid != status.pid
    assert (await chat(port))["choices"]


async def test_wait_ready_on_a_running_server(manager, tiny_model, port) -> None:
    await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    await manager.wait_ready(port, timeout=5)
    with pytest.raises(TimeoutError, match=str(free_port_no := free_port())):
        await manager.wait_ready(free_port_no, timeout=0.2)


async def test_shutdown_leaves_no_process(llama_server_bin, tiny_model, tmp_path) -> None:
    m = LlamaServerManager(llama_server_bin, log_dir=tmp_path)
    ports = [free_port(), free_port()]
    await asyncio.gather(*(m.load_model(str(tiny_model), port=p, ctx_size=CTX) for p in ports))
    pids = [m.status(p).pid for p in ports]
    tree = [psutil.Process(pid) for pid in pids]
    tree += [c for p in tree for c in p.children(recursive=True)]
    await m.shutdown()
    gone, alive = psutil.wait_procs(tree, timeout=0)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert m.get_loaded_models() == {}


async def test_port_is_free_again_after_unload(manager, tiny_model, port) -> None:
    await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    await manager.unload_model(port)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


async def test_a_stop_cancelled_half_way_still_ends_stopped(manager, tiny_model, port) -> None:
    """The API answers an unload in a handler that is cancelled when its client goes away:
    the stop it began must still end with the port stopped, not "stopping" with no process
    (the check window's Cancel left a port so, and the next load of the model failed)."""
    status = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    pid = status.pid
    unload: asyncio.Task | None = None

    def cancel_once_stopping(e: StateEvent) -> None:
        if e.port == port and e.new is ServerState.STOPPING and unload is not None:
            unload.cancel()  # lands at the stop's first wait: TERM sent, exit not yet seen

    manager.subscribe(cancel_once_stopping)
    unload = asyncio.create_task(manager.unload_model(port))
    with pytest.raises(asyncio.CancelledError):
        await unload
    assert manager.status(port).state is ServerState.STOPPED
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    again = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    assert again.state is ServerState.READY and again.pid != pid


async def test_a_stop_that_fails_after_the_exit_is_cleared_by_the_next_unload(
    manager, tiny_model, port, monkeypatch
) -> None:
    """Since a begun stop always finishes (``finish``), a cancel no longer leaves a port
    "stopping" with no process; an error out of the stop after the server exited still
    does (here: the look at the process table fails once the server is gone). The next
    unload ends it as stopped, and the model loads again."""
    from app.core.servers import processes

    status = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    real_stop = processes.GroupStopper.stop

    async def stop_then_fail(self, grace, leader_exited=None):
        await real_stop(self, grace, leader_exited)
        raise OSError(errno.EIO, "cannot read /proc")

    monkeypatch.setattr(processes.GroupStopper, "stop", stop_then_fail)
    with pytest.raises(OSError, match="cannot read /proc"):
        await manager.unload_model(port)
    monkeypatch.undo()
    assert manager.status(port).state is ServerState.STOPPING
    assert manager.get_loaded_models() == {}  # no process behind it
    assert not psutil.pid_exists(status.pid) or (
        psutil.Process(status.pid).status() == psutil.STATUS_ZOMBIE
    )
    events = record_events(manager)
    await manager.unload_model(port)
    assert states(events, port) == [ServerState.STOPPED]
    assert manager.status(port).pid is None
    again = await manager.load_model(str(tiny_model), port=port, ctx_size=CTX)
    assert again.state is ServerState.READY and again.pid != status.pid


def test_last_output_puts_this_starts_errors_first(tmp_path) -> None:
    from app.core.servers.server_log import last_output

    log = tmp_path / "llama-server-1.log"
    log.write_text(
        "===== t familylog-tray start: llama-server -m a\n"
        "0.01 E srv  load_model: an old failure\n"
        "===== t familylog-tray start: llama-server -m b\n"
        "0.01 I srv  loading\n"
        "0.02 E srv  load_model: failed to load multimodal model\n"
        + "".join(f"0.03 I srv  clean-up {i}\n" for i in range(8))
        + "===== t familylog-tray: PID 1 exited with code 1\n"
    )
    out = last_output(log, 3)
    assert out[0].endswith("failed to load multimodal model")
    assert out[1:] == [f"0.03 I srv  clean-up {i}" for i in (5, 6, 7)]
    assert not any("old failure" in ln for ln in out)
