"""A llama-server started through a wrapper script that does not ``exec``: the server is its
whole process group. Unloading stops both; after an app SIGKILL (the kernel ends the wrapper,
llama-server lives on holding the port) the next start reaps it by its group's mark, and the
port is the app's again, not an "external" one that answers 503 forever.

A real wrapper (``/bin/sh``) around the real llama-server."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from app.core.models.entry import LLM
from app.core.servers.states import ServerState
from tests.conftest import free_port, llama_children
from tests.support.app import alive, load_role, make_core, notice, run_app, settings_for, titles
from tests.support.wait import until, wait_until


def wrapper(path: Path, binary: str) -> Path:
    """A wrapper as people write them: sets something up, then runs the server (no exec)."""
    path.write_text(f'#!/bin/sh\nexport LLAMA_ARG_N_PARALLEL=1\n"{binary}" "$@"\necho done\n')
    path.chmod(0o755)
    return path


def _servers(binary: str) -> list[psutil.Process]:
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [""])[0] == binary and alive(p.pid)
    ]


async def test_unload_stops_the_wrapper_and_its_server(app, llama_server_bin, tiny_model, tmp_path):
    script = wrapper(tmp_path / "llama-server", llama_server_bin)
    core = app(LLAMA_SERVER_PATH=str(script), LLM_MODEL_GGUF=str(tiny_model))
    await core.start()
    st = await load_role(core, LLM)
    assert st.state is ServerState.READY
    group = psutil.Process(st.pid).children()
    assert [p.cmdline()[0] for p in group] == [llama_server_bin]
    await core.lifecycle.unload(core.catalogue.role(LLM))
    assert not alive(st.pid) and not any(alive(p.pid) for p in group)
    assert core.manager.status(st.port).state is ServerState.STOPPED


async def test_a_wrapper_that_exits_takes_its_server_with_it(
    app, llama_server_bin, tiny_model, tmp_path
):
    """The wrapper dies (killed, crashed): its llama-server does not hold the port on."""
    script = wrapper(tmp_path / "llama-server", llama_server_bin)
    core = app(LLAMA_SERVER_PATH=str(script), LLM_MODEL_GGUF=str(tiny_model))
    await core.start()
    st = await load_role(core, LLM)
    (server,) = psutil.Process(st.pid).children()
    psutil.Process(st.pid).send_signal(signal.SIGKILL)
    await until(lambda: not alive(server.pid), 30)
    # the supervisor restarts it on the same port
    await until(lambda: core.manager.status(st.port).pid not in (None, st.pid), 30)
    await until(lambda: core.manager.status(st.port).state is ServerState.READY, 60)


async def test_after_an_app_sigkill_the_next_start_reaps_the_wrappers_server(
    app_home, llama_server_bin, tiny_model, tmp_path
):
    script = wrapper(tmp_path / "llama-server", llama_server_bin)
    port = free_port()
    env = {
        "LLAMA_SERVER_PATH": str(script),
        "LLM_MODEL_GGUF": str(tiny_model),
        "LLM_LOAD_AT_START": "true",
        "LLAMA_LLM_PORT": str(port),
        "LLAMA_CTX_SIZE": "512",
        "API_ENABLED": "false",
    }
    before = {x.pid for x in _servers(llama_server_bin)}  # another test's, not ours

    def mine() -> list[psutil.Process]:
        return [x for x in _servers(llama_server_bin) if x.pid not in before]

    p = run_app("--headless", env=env)
    orphans: list[psutil.Process] = []
    try:
        assert "running headless" in p.stdout.readline(), p.stderr.read()
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        # the kernel ended the wrapper with the app; its llama-server lives on
        assert wait_until(lambda: len(mine()) == 1, 15), [x.cmdline() for x in mine()]
        orphans = mine()
        s = settings_for(
            str(script), LLM_MODEL_GGUF=str(tiny_model), LLAMA_LLM_PORT=port, STOP_GRACE_SECONDS=5
        )
        core = make_core(s)
        await core.start()
        try:
            assert notice(core, "Stopped a leftover server")
            assert not any(alive(o.pid) for o in orphans)
            assert core.external == {}, titles(core)
            st = await load_role(core, LLM)  # the port is the app's again
            assert st.state is ServerState.READY and st.port == port
        finally:
            await core.stop()
        assert llama_children() == []
    finally:
        for o in orphans:
            if alive(o.pid):
                o.kill()
        if p.poll() is None:
            p.kill()
            p.wait()
