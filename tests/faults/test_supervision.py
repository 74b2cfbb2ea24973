"""A server that crashes or hangs while ready: the user is told, it is restarted with the
same spec after a back-off, and after too many failures the supervisor gives up, says so
and leaves the truth (failed, nothing running)."""

from __future__ import annotations

import asyncio
import os
import signal

from app.core.lifecycle import hung as hung_probe
from app.core.lifecycle.supervisor import RestartPolicy
from app.core.models.entry import LLM
from app.core.notices import Level
from app.core.servers.ownership import OwnershipRecord
from app.core.servers.states import ServerState, StateEvent
from tests.conftest import llama_children
from tests.support.app import (
    AS_APP,
    FAST,
    alive,
    load_role,
    make_core,
    notice,
    settings_for,
    supervisor,
    titles,
)
from tests.support.fakes import healthy_but_hung_server
from tests.support.wait import until

HUNG_PROBE = RestartPolicy(first_delay=0.01, max_delay=0.05, probe_interval=1.0, probe_timeout=0.25)


async def _loaded(app, **kw):
    core = app(**kw)
    events: list[StateEvent] = []
    core.manager.subscribe(events.append)
    await core.start()
    st = await load_role(core, LLM)
    assert st.state is ServerState.READY
    return core, st, events


async def test_killed_while_ready_is_restarted(app, tiny_model) -> None:
    core, first, events = await _loaded(app, LLM_MODEL_GGUF=str(tiny_model))
    port = first.port
    os.kill(first.pid, signal.SIGKILL)
    await until(lambda: any("Restarted" in t for t in titles(core)))
    # Marked failed from the exit, with the exit code and the last lines of the log...
    crash = next(e for e in events if e.old is ServerState.READY and e.new is ServerState.FAILED)
    assert crash.status.exit_code == -signal.SIGKILL
    n = notice(core, f"Server on port {port} crashed")
    assert n.level is Level.ERROR and n.log_path == core.log_path(port)
    assert "exited unexpectedly with code -9" in n.text and "Last lines:" in n.text
    assert "listening on" in n.text or "srv" in n.text  # the server's own output
    # ...then restarted with the same spec after the back-off, and the user told so.
    assert notice(core, f"Restarting LLM on port {port}").text == (
        f"LLM on port {port} exited with code -9; restarting it in 0.01 s (attempt 1 of 3)."
    )
    now = core.manager.status(port)
    assert now.state is ServerState.READY and now.pid != first.pid and alive(now.pid)
    assert now.spec == first.spec
    assert f"is ready again (PID {now.pid})" in notice(core, "Restarted LLM").text
    assert [e.pid for e in OwnershipRecord(core.paths.ownership_file).read()] == [now.pid]
    log = core.log_path(port).read_text()
    assert log.count("familylog-tray start:") == 2 and "exited with code -9" in log
    await core.stop()
    assert llama_children() == [] and not core.paths.ownership_file.exists()


async def test_restart_gives_up_after_too_many_crashes(app, tiny_model) -> None:
    core, st, _ = await _loaded(app, LLM_MODEL_GGUF=str(tiny_model))
    port = st.port
    killed: list[int] = []
    for _ in range(FAST.max_crashes + 1):
        await until(
            lambda: (
                core.manager.status(port).state is ServerState.READY
                and core.manager.status(port).pid not in killed
            )
        )
        killed.append(core.manager.status(port).pid)
        os.kill(killed[-1], signal.SIGKILL)
    await until(lambda: any("Gave up" in t for t in titles(core)))
    n = notice(core, f"Gave up restarting LLM on port {port}")
    assert n.text.startswith(f"LLM on port {port} failed 4 times within 10 min")
    assert "(last: exited with code -9)" in n.text and "load the model again" in n.text
    assert supervisor(core).restarts == FAST.max_crashes
    assert not supervisor(core).pending_restart(port)
    assert core.manager.status(port).state is ServerState.FAILED
    assert core.manager.get_loaded_models() == {} and llama_children() == []
    assert core.log_path(port).read_text().count("exited with code -9") == 4


async def test_no_restart_when_restart_on_crash_is_off(app, tiny_model) -> None:
    off = RestartPolicy(enabled=False, first_delay=0.01, probe_interval=0)  # as from_settings
    core, st, _ = await _loaded(app, policy=off, LLM_MODEL_GGUF=str(tiny_model))
    os.kill(st.pid, signal.SIGKILL)
    await until(lambda: core.manager.status(st.port).state is ServerState.FAILED)
    assert "exited unexpectedly with code -9" in notice(core, "crashed").text
    assert not supervisor(core).pending_restart(st.port)
    assert not any("Restart" in t for t in titles(core))
    assert llama_children() == []


async def test_user_action_during_back_off_wins(app, tiny_model) -> None:
    slow = RestartPolicy(first_delay=0.5, probe_interval=0)
    core, st, _ = await _loaded(app, policy=slow, LLM_MODEL_GGUF=str(tiny_model))
    os.kill(st.pid, signal.SIGKILL)
    await until(lambda: supervisor(core).pending_restart(st.port))
    await core.lifecycle.unload_port(st.port)  # the user unloads it before the restart is due
    await until(lambda: not supervisor(core).pending_restart(st.port))
    assert core.manager.status(st.port).state is ServerState.STOPPED
    assert not any("Restarted" in t for t in titles(core)) and llama_children() == []


async def test_hung_server_is_restarted(app, tiny_model) -> None:
    # SIGSTOP: the process lives but answers nothing, not even /health.
    core, first, _ = await _loaded(app, policy=HUNG_PROBE, LLM_MODEL_GGUF=str(tiny_model))
    port = first.port
    os.kill(first.pid, signal.SIGSTOP)
    try:
        await until(lambda: any("Restarted" in t for t in titles(core)))
    finally:
        if alive(first.pid):
            os.kill(first.pid, signal.SIGCONT)
    n = notice(core, f"LLM on port {port} is not responding")
    assert f"llama-server PID {first.pid} answered no health check for 1 s" in n.text
    assert "restarting it in 0.01 s" in notice(core, "Restarting LLM").text
    now = core.manager.status(port)
    assert now.state is ServerState.READY and now.pid != first.pid
    assert not alive(first.pid)  # stopped (TERM, then CONT so it can act on it)
    log = core.log_path(port).read_text()
    assert log.count("familylog-tray start:") == 2 and f"PID {first.pid} exited" in log
    await core.stop()
    assert llama_children() == []


async def test_server_that_answers_health_but_not_requests(app, tiny_model, tmp_path) -> None:
    # /health is fine, every real request hangs: detected, restarted, given up on, stopped.
    fake = healthy_but_hung_server(tmp_path / "llama-server")
    policy = RestartPolicy(first_delay=0.01, max_delay=0.05, probe_interval=0.3, probe_timeout=0.1)
    core, first, _ = await _loaded(
        app, policy=policy, LLAMA_SERVER_PATH=str(fake), LLM_MODEL_GGUF=str(tiny_model)
    )
    port = first.port
    await until(lambda: core.manager.status(port).state is ServerState.FAILED)
    assert titles(core).count(f"LLM on port {port} is not responding") == 4
    assert supervisor(core).restarts == 3
    n = notice(core, f"Gave up restarting LLM on port {port}")
    assert "(last: hung)" in n.text
    st = core.manager.status(port)
    assert st.error == n.text and st.pid is None  # not "ready": the truth
    assert core.manager.get_loaded_models() == {} and llama_children() == []
    assert "will never be answered" in core.log_path(port).read_text()


async def test_bootstrap_attaches_the_supervisor(llama_server_bin) -> None:
    s = settings_for(llama_server_bin, RESTART_ON_CRASH=False, HUNG_PROBE_SECONDS=30)
    core = make_core(s, **AS_APP)
    sup = supervisor(core)
    assert sup.policy.enabled is False and sup.policy.probe_interval == 30


async def test_the_hung_probe_follows_a_changed_interval(llama_server_bin, monkeypatch) -> None:
    """HUNG_PROBE_SECONDS turned on in a running app: the probe starts without a restart."""
    monkeypatch.setattr(hung_probe, "PROBE_RECHECK", 0.02)
    core = make_core(settings_for(llama_server_bin, HUNG_PROBE_SECONDS=0), **AS_APP)
    sup = supervisor(core)
    probes: list[float] = []
    real = sup.hung.probe_all

    def counted(client, only=None):
        probes.append(asyncio.get_running_loop().time())
        return real(client, only)

    monkeypatch.setattr(sup.hung, "probe_all", counted)
    await core.start()
    try:
        assert sup.policy.probe_interval == 0 and probes == []
        core.live.set(core.settings.model_copy(update={"HUNG_PROBE_SECONDS": 0.4}))
        await until(lambda: len(probes) >= 3, 10)
        gaps = [b - a for a, b in zip(probes, probes[1:], strict=False)]
        assert min(gaps) >= 0.1 - 0.01, gaps  # a quarter of 0.4 s, not every recheck
    finally:
        await core.stop()
