"""A configured port is taken: by a stranger (left alone, shown) or by a leftover of an
earlier run of the app (reaped at start)."""

from __future__ import annotations

import logging

import httpx
import pytest

from app.core.lifecycle.instance import LoadFailedError
from app.core.models.entry import LLM
from app.core.notices import Level
from app.core.servers.ownership import OwnershipRecord
from app.core.servers.ports import PortInUseError
from app.core.servers.states import ServerState
from tests.conftest import free_port, llama_children
from tests.support.app import alive, load_role, notice, server_cmd, start_foreign_server, titles
from tests.support.wait import wait_until


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_port_held_by_a_foreign_llama_server(app, llama_server_bin, tiny_model, tmp_path):
    port = free_port()
    foreign = start_foreign_server(llama_server_bin, tiny_model, port, tmp_path / "foreign.log")
    try:
        assert wait_until(lambda: _ready(port), 30)
        core = app(LLM_MODEL_GGUF=str(tiny_model), LLAMA_LLM_PORT=port)
        await core.start()
        # Shown as external with its PID, and the user is told the port is taken.
        ext = core.external[port]
        assert ext.pid == foreign.pid and ext.is_llama_server
        n = notice(core, f"Port {port} is taken")
        assert n.level is Level.WARNING
        assert f"held by llama-server (PID {foreign.pid}), which this app did not start" in n.text
        assert "Stop that program or choose another port" in n.text
        # Loading there fails with the same truth; the stranger is never touched.
        with pytest.raises(LoadFailedError) as err:
            await load_role(core, LLM)
        assert isinstance(err.value.__cause__, PortInUseError)
        key = core.catalogue.role(LLM).key
        assert f"Port {port} is already in use by llama-server (PID {foreign.pid})" in (
            notice(core, f"Loading LLM ({key}) failed").text
        )
        assert core.manager.status(port).state is ServerState.FAILED
        await core.stop()
        assert alive(foreign.pid) and _ready(port)
        assert core.external[port].pid == foreign.pid
        assert not core.paths.ownership_file.exists()
    finally:
        foreign.kill()
        foreign.wait()
    # Once the stranger is gone the port is ours again.
    assert wait_until(lambda: not _ready(port), 10)
    assert await core.refresh_external() == {}
    assert (await load_role(core, LLM)).state is ServerState.READY


async def test_port_held_by_an_orphan_of_an_earlier_run(
    app, llama_server_bin, tiny_model, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    port = free_port()
    core = app(LLM_MODEL_GGUF=str(tiny_model), LLAMA_LLM_PORT=port)
    # An earlier run of the app started this server, recorded it, then died without a stop.
    orphan = start_foreign_server(llama_server_bin, tiny_model, port, core.log_path(port))
    try:
        earlier = OwnershipRecord(core.paths.ownership_file, instance="earlier-run")
        earlier.add(
            orphan.pid, port, str(tiny_model), server_cmd(llama_server_bin, tiny_model, port)
        )
        assert wait_until(lambda: _ready(port), 30)
        await core.start()
        assert orphan.wait(15) is not None
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
    n = notice(core, "Stopped a leftover server")
    assert n.text == (
        f"llama-server PID {orphan.pid} on port {port} ({tiny_model.name}) was left running "
        "by an earlier run of the app and has been terminated."
    )
    assert f"Reaped orphaned llama-server PID {orphan.pid} on port {port}" in caplog.text
    assert "earlier-run" in caplog.text
    assert not any("is taken" in t for t in titles(core)) and core.external == {}
    # The port is the app's again, and the record names only the new server.
    st = await load_role(core, LLM)
    assert st.state is ServerState.READY and st.pid != orphan.pid
    assert [e.pid for e in OwnershipRecord(core.paths.ownership_file).read()] == [st.pid]
    await core.stop()
    assert llama_children() == [] and not core.paths.ownership_file.exists()
    log = core.log_path(port).read_text()  # the orphan's output is kept, then the new server's
    assert log.count("listening on") == 2 and "familylog-tray start:" in log
