"""Random interleavings of what can happen to the app, against the real llama-server.

Rules: load a profile on its own port, switch the single port to a profile, unload a
port, kill a server from outside (SIGKILL; the supervisor restarts it), restart the app
cleanly, and restart it after a crash (a new AppCore on the same home, the old one gone
without a stop). After every step the invariants compare the app's view with the
processes that really exist (psutil).

Rules to add once their features land (issue 5 and 6): proxied API requests (each
succeeds or fails with a message), Process now, and cancelling a run.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.core.app_core import AppCore
from app.core.ownership import OwnershipRecord
from app.core.profiles import LLM, VISION
from app.core.states import ServerState
from app.core.supervisor import Supervisor
from app.paths import AppPaths
from tests.conftest import free_port
from tests.support.app import FAST, settings_for, supervisor

EXAMPLES = int(os.environ.get("FLT_STATE_MACHINE_EXAMPLES", "100"))
STEPS = int(os.environ.get("FLT_STATE_MACHINE_STEPS", "5"))


class World:
    """What lives across examples: the binary, the models, the ports and the loop."""

    def __init__(self, binary: str, model_a: Path, model_b: Path) -> None:
        self.binary = binary
        self.settings = settings_for(
            binary,
            LLM_MODEL_GGUF=str(model_a),
            VISION_MODEL_GGUF=str(model_b),
            LLAMA_LLM_PORT=free_port(),
            LLAMA_VISION_PORT=free_port(),
            LLAMA_PORT=free_port(),
        )
        self.ports = sorted(
            {
                self.settings.LLAMA_LLM_PORT,
                self.settings.LLAMA_VISION_PORT,
                self.settings.LLAMA_PORT,
            }
        )
        self.loop = asyncio.new_event_loop()
        self.examples = 0
        self.steps: collections.Counter[str] = collections.Counter()


def live_servers(binary: str) -> dict[int, list[int]]:
    """``{port: [pid, ...]}`` of every live llama-server of this test process's tree."""
    out: dict[int, list[int]] = collections.defaultdict(list)
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if cmd and cmd[0] == binary and "--port" in cmd:
            out[int(cmd[cmd.index("--port") + 1])].append(p.pid)
    return out


class AppMachine(RuleBasedStateMachine):
    world: World  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.world.examples += 1
        self.home = Path(tempfile.mkdtemp(prefix="flt-sm-"))
        self.paths = AppPaths(self.home, self.home / "logs", self.home / "state").ensure()
        self.gone: list[AppCore] = []  # cores "killed" with the app
        self.core = self._new_core()

    # ── helpers ───────────────────────────────────────────────────────────────
    def run(self, coro, timeout: float = 60.0):
        return self.world.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def settle(self, predicate, timeout: float = 30.0) -> None:
        async def wait() -> None:
            deadline = time.monotonic() + timeout
            while not predicate():
                assert time.monotonic() < deadline, "the app did not settle"
                await asyncio.sleep(0.01)

        self.run(wait(), timeout + 5)

    def _new_core(self) -> AppCore:
        core = AppCore(self.world.settings, self.paths)
        core.add_service(Supervisor(core, FAST))
        self.run(core.start())
        return core

    def _step(self, name: str) -> None:
        self.world.steps[name] += 1

    # ── rules ─────────────────────────────────────────────────────────────────
    @rule(name=st.sampled_from([LLM, VISION]))
    def load(self, name: str) -> None:
        self._step("load")
        assert self.run(self.core.load_profile(name)).state is ServerState.READY

    @rule(name=st.sampled_from([LLM, VISION]))
    def switch(self, name: str) -> None:
        self._step("switch")
        assert self.run(self.core.switch_single_port(name)).state is ServerState.READY

    @rule(data=st.data())
    def unload(self, data) -> None:
        self._step("unload")
        port = data.draw(st.sampled_from(self.world.ports))
        self.run(self.core.unload_port(port))
        assert self.core.manager.status(port).state is ServerState.STOPPED

    def _ready_ports(self) -> list[int]:
        return [p for p, s in self.core.manager.statuses().items() if s.state is ServerState.READY]

    @precondition(lambda self: self._ready_ports())
    @rule(data=st.data())
    def kill_a_server(self, data) -> None:
        self._step("kill")
        port = data.draw(st.sampled_from(self._ready_ports()))
        pid = self.core.manager.status(port).pid
        os.kill(pid, signal.SIGKILL)
        sup = supervisor(self.core)

        def settled() -> bool:
            s = self.core.manager.status(port)
            restarted = s.state is ServerState.READY and s.pid != pid
            given_up = s.state is ServerState.FAILED and not sup.pending_restart(port)
            return restarted or given_up

        self.settle(settled)

    @rule()
    def restart_app_cleanly(self) -> None:
        self._step("restart clean")
        self.run(self.core.stop())
        assert not self.paths.ownership_file.exists()
        self.core = self._new_core()

    @rule()
    def restart_app_after_a_crash(self) -> None:
        """The app dies without a stop; its servers live on (as on macOS, or when the
        death signal is lost); the next start must reap them."""
        self._step("restart after crash")
        old = self.core
        self.run(supervisor(old).stop())
        old.manager._record = None  # a dead app writes nothing more
        self.gone.append(old)
        self.core = self._new_core()
        left = [p for p in live_servers(self.world.binary).values() for p in p]
        assert not [p for p in left if p not in self._manager_pids()]

    # ── invariants ────────────────────────────────────────────────────────────
    def _manager_pids(self) -> set[int]:
        return {s.pid for s in self.core.manager.statuses().values() if s.state.alive and s.pid}

    @invariant()
    def one_process_per_port(self) -> None:
        for port, pids in live_servers(self.world.binary).items():
            assert len(pids) <= 1, f"port {port} has {pids}"

    @invariant()
    def the_app_sees_what_exists(self) -> None:
        seen = {(port, s.pid) for port, s in self.core.manager.statuses().items() if s.state.alive}
        real = {
            (port, pid) for port, pids in live_servers(self.world.binary).items() for pid in pids
        }
        assert seen == real
        assert all(
            s.state is not ServerState.STOPPING for s in self.core.manager.statuses().values()
        )

    @invariant()
    def every_process_is_recorded(self) -> None:
        recorded = {e.pid for e in OwnershipRecord(self.paths.ownership_file).read()}
        real = {pid for pids in live_servers(self.world.binary).values() for pid in pids}
        assert real <= recorded, f"unrecorded: {real - recorded}"

    def teardown(self) -> None:
        try:
            self.run(self.core.stop())
            for old in self.gone:
                self.run(old.manager.shutdown())
            assert live_servers(self.world.binary) == {}
            assert not self.paths.ownership_file.exists()
        finally:
            for pids in live_servers(self.world.binary).values():
                for pid in pids:
                    psutil.Process(pid).kill()
            shutil.rmtree(self.home, ignore_errors=True)


@pytest.mark.timeout(600)
def test_app_state_machine(llama_server_bin, tiny_model, tiny_model_b) -> None:
    world = World(llama_server_bin, tiny_model, tiny_model_b)
    AppMachine.world = world
    try:
        run_state_machine_as_test(
            AppMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        world.loop.run_until_complete(world.loop.shutdown_asyncgens())
        world.loop.close()
    assert world.examples >= EXAMPLES
    # every kind of step was exercised
    assert set(world.steps) == {
        "load",
        "switch",
        "unload",
        "kill",
        "restart clean",
        "restart after crash",
    }, world.steps
