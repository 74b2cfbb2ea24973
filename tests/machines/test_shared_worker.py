"""This GPU shared with other machines: ggml-rpc-server run and supervised by the app (the
tray's switch, the settings, --rpc-worker), bound to loopback unless the user allows more."""

from __future__ import annotations

import os
import signal

from app.core.machines.rpc_protocol import accepts, ask_worker
from app.core.machines.shared_worker import ShareState
from app.core.notices import Level
from tests.conftest import free_port
from tests.support.app import alive, make_core, run_app, settings_for
from tests.support.wait import until


def test_the_command_shares_on_loopback_and_stops_on_sigterm(rpc_worker) -> None:
    w = rpc_worker()
    assert "127.0.0.1:" in w.line and "no authentication" in w.line
    assert w.stop() == 0
    assert w.proc.stderr.read() == ""


def test_the_command_refuses_a_network_address_unless_allowed(llama_server_bin) -> None:
    env = {"LLAMA_SERVER_PATH": llama_server_bin}
    p = run_app("--rpc-worker", "--host", "0.0.0.0", "--port", str(free_port()), env=env)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2, (out, err)
    assert "no authentication" in err and "RPC_WORKER_ALLOW_REMOTE" in err, err
    p = run_app("--host", "127.0.0.1", env=env)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "go with --rpc-worker" in err


def test_the_command_says_when_the_build_has_no_rpc(tmp_path) -> None:
    lone = tmp_path / "llama-server"
    lone.write_text("#!/bin/sh\n")
    lone.chmod(0o755)
    p = run_app("--rpc-worker", "--port", str(free_port()), env={"LLAMA_SERVER_PATH": str(lone)})
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "No ggml-rpc-server beside" in err, err


async def test_the_app_s_worker_follows_its_settings_and_comes_back_after_a_crash(
    llama_server_bin,
) -> None:
    first, second = free_port(), free_port()
    s = settings_for(llama_server_bin, RPC_WORKER_ENABLED=True, RPC_WORKER_PORT=first)
    core = make_core(s)
    await core.start()
    shared = core.shared_worker
    try:
        st = shared.status
        assert st.state is ShareState.RUNNING and st.address == f"127.0.0.1:{first}", st
        assert not st.remote and "this machine only" in st.text()
        assert (await ask_worker("127.0.0.1", first)).version == st.version
        # another port, applied at once: the worker moves
        core.live.set(s.model_copy(update={"RPC_WORKER_PORT": second}))
        await until(lambda: shared.status.address.endswith(f":{second}"))
        await until(lambda: shared.status.state is ShareState.RUNNING)
        assert await accepts("127.0.0.1", first) is not None
        assert (await ask_worker("127.0.0.1", second)).devices
        # a crash: told, and started again
        pid = shared.status.pid
        os.kill(pid, signal.SIGKILL)
        await until(lambda: shared.status.pid not in (None, pid), 30)
        await until(lambda: shared.status.state is ShareState.RUNNING)
        told = [n for n in core.notices.history if n.title == "Restarting the shared worker"]
        assert told and "SIGKILL" in told[-1].text and told[-1].level is Level.WARNING
        assert not alive(pid)
        # switched off: stopped
        pid = shared.status.pid
        core.live.set(s.model_copy(update={"RPC_WORKER_ENABLED": False}))
        await until(lambda: shared.status.state is ShareState.OFF)
        await until(lambda: not alive(pid))
    finally:
        await core.stop()


async def test_a_network_address_needs_the_explicit_setting(llama_server_bin) -> None:
    s = settings_for(
        llama_server_bin,
        RPC_WORKER_ENABLED=True,
        RPC_WORKER_HOST="0.0.0.0",
        RPC_WORKER_PORT=free_port(),
    )
    core = make_core(s)
    await core.start()
    try:
        st = core.shared_worker.status
        assert st.state is ShareState.FAILED and st.pid is None
        assert "RPC_WORKER_ALLOW_REMOTE" in st.error and "no authentication" in st.error
        told = [n for n in core.notices.history if n.title == "Not sharing this GPU"]
        assert told and told[-1].level is Level.ERROR
    finally:
        await core.stop()
