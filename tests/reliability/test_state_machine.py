"""Random interleavings of what can happen to the app, against the real llama-server.

Rules: load a role model where placement puts it (the default RUN_MODE: its own port),
load one with RUN_MODE=switch (it takes the single port and the other model goes), unload a
port, kill a server from outside (SIGKILL; the supervisor restarts it), restart the app
cleanly, restart it after a crash (a new core on the same home, the old one gone
without a stop), an OpenAI-style chat request through the app's API naming a model's
key (JIT load), "Process now" with the stand-in FamilyLog (a short run or one that
hangs) and cancelling the run. After every step the invariants compare the app's view
with the processes that really exist (psutil); every API request either succeeded or got
an error JSON with a message (never a hang or a dropped connection), and its status is
the one its model's state allows (``ALLOWED``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import tempfile
from pathlib import Path

import httpx
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
from app.core.lifecycle.model_state import ModelState
from app.core.models.entry import LLM, VISION
from app.core.runs.records import Outcome
from app.core.servers.health import loopback_client
from app.core.servers.ownership import OwnershipRecord
from app.core.servers.states import ServerState
from app.core.settings.settings_apply import apply_settings
from app.paths import AppPaths
from tests.conftest import free_port
from tests.runs.conftest import standin_command
from tests.support.app import FAST, load_role, make_core, settings_for, supervisor
from tests.support.wait import until

EXAMPLES = int(os.environ.get("FLT_STATE_MACHINE_EXAMPLES", "100"))
STEPS = int(os.environ.get("FLT_STATE_MACHINE_STEPS", "5"))


class World:
    """What lives across examples: the binary, the models, the ports and the loop."""

    def __init__(self, binary: str, model_a: Path, model_b: Path, familylog_dir: Path) -> None:
        self.binary = binary
        self.settings = settings_for(
            binary,
            LLM_MODEL_GGUF=str(model_a),
            VISION_MODEL_GGUF=str(model_b),
            LLAMA_LLM_PORT=free_port(),
            LLAMA_VISION_PORT=free_port(),
            LLAMA_PORT=free_port(),
            API_PORT=0,
            FAMILYLOG_DIR=str(familylog_dir),
            FAMILYLOG_COMMAND=standin_command("ok", "2"),
            RUN_PRELOAD="none",
        )
        # the same settings in switch mode: every model on LLAMA_PORT, one at a time
        self.switch_mode = self.settings.model_copy(update={"RUN_MODE": "switch"})
        # the same settings, with a run that hangs until it is cancelled
        self.hanging = self.settings.model_copy(
            update={"FAMILYLOG_COMMAND": standin_command("hang")}
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


# What a chat request through the API may answer, by its model's state when it is sent
# (between steps every model is at rest: stopped, ready, or failed after a crash the
# supervisor gave up on). Nothing in this machine holds a model or makes a load fail, so
# the README's promise leaves one answer: served (JIT load when not loaded). A 503 (busy,
# load failed) or a 500 is a broken promise here.
ALLOWED: dict[ModelState, set[int]] = {
    ModelState.STOPPED: {200},
    ModelState.READY: {200},
    ModelState.FAILED: {200},
}


class AppMachine(RuleBasedStateMachine):
    world: World  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.world.examples += 1
        self.home = Path(tempfile.mkdtemp(prefix="flt-sm-"))
        self.paths = AppPaths(self.home, self.home / "logs", self.home / "state").ensure()
        self.gone: list[AppCore] = []  # cores "killed" with the app
        self.run_pids: set[int] = set()  # the runs' processes (the hang stand-in's too)
        self.answers: list[tuple[str, int | None, str]] = []  # (key, status, problem)
        self.core = self._new_core()

    # ── helpers ───────────────────────────────────────────────────────────────
    def run(self, coro, timeout: float = 60.0):
        return self.world.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def settle(self, predicate, timeout: float = 30.0) -> None:
        self.run(until(predicate, timeout), timeout + 5)

    def _new_core(self) -> AppCore:
        """The core as the tray builds it (API on a free port, runs), restarts made fast."""
        core = make_core(
            self.world.settings, FAST, api=None, runs=True, schedule=False, paths=self.paths
        )
        core.runs.subscribe_output(self._run_lines)
        self.run(core.start())
        assert core.api.url, "the API did not start"
        return core

    def _run_lines(self, batch: list[str]) -> None:
        for line in batch:
            if "grandchild" in line:  # "[standin] pid N grandchild M"
                words = line.split()
                self.run_pids.update(int(w) for w in words if w.isdigit())

    def _step(self, name: str) -> None:
        self.world.steps[name] += 1

    # ── rules ─────────────────────────────────────────────────────────────────
    def _use(self, settings) -> None:
        self.run(apply_settings(self.core.live, self.core.lifecycle, settings))

    @rule(name=st.sampled_from([LLM, VISION]))
    def load(self, name: str) -> None:
        self._step("load")
        st_ = self.run(load_role(self.core, name))
        assert st_.state is ServerState.READY
        inst = self.core.lifecycle.ready(self.core.catalogue.role(name))
        assert inst is not None and inst.pid == st_.pid

    @rule(name=st.sampled_from([LLM, VISION]))
    def switch(self, name: str) -> None:
        """RUN_MODE=switch, then load: a model not loaded yet is loaded on LLAMA_PORT and
        every other model is unloaded; one already ready is used where it is (same PID)."""
        self._step("switch")
        self._use(self.world.switch_mode)
        try:
            before = self.core.lifecycle.ready(self.core.catalogue.role(name))
            st_ = self.run(load_role(self.core, name))
            assert st_.state is ServerState.READY
            if before is not None:
                assert (st_.port, st_.pid) == (before.port, before.pid)
            else:
                assert st_.port == self.world.settings.LLAMA_PORT
                alive = [p for p, s in self.core.manager.statuses().items() if s.state.alive]
                assert alive == [st_.port]
        finally:
            self._use(self.world.settings)

    @rule(data=st.data())
    def unload(self, data) -> None:
        self._step("unload")
        port = data.draw(st.sampled_from(self.world.ports))
        self.run(self.core.lifecycle.unload_port(port))
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
        # its API socket closes and its run ends with it
        self.run(old.api.stop())
        self.run(old.runs.stop())
        old.manager.processes._record = None  # a dead app writes nothing more
        self.gone.append(old)
        self.core = self._new_core()
        left = [p for p in live_servers(self.world.binary).values() for p in p]
        assert not [p for p in left if p not in self._manager_pids()]

    @rule(name=st.sampled_from([LLM, VISION]))
    def api_request(self, name: str) -> None:
        """A chat completion through the app's API, naming the profile's key: answered with
        the status its model's state allows (``ALLOWED``); a loaded model answers from the
        same process, any other is loaded just in time."""
        self._step("api")
        entry = self.core.catalogue.role(name)
        key = entry.key
        state = self.core.lifecycle.state(entry)
        before = self.core.lifecycle.ready(entry)
        body = {
            "model": key,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 2,
            "temperature": 0,
        }

        async def ask() -> tuple[int | None, str]:
            async with loopback_client(timeout=90) as client:
                try:
                    r = await client.post(f"{self.core.api.url}/v1/chat/completions", json=body)
                except httpx.HTTPError as e:  # a hang or a dropped connection
                    return None, f"{type(e).__name__}: {e}"
            if r.status_code == 200:
                ok = bool(r.json().get("choices"))
                return 200, "" if ok else f"200 without choices: {r.text[:200]}"
            try:
                err = r.json().get("error")
                msg = err.get("message") if isinstance(err, dict) else err
            except ValueError:
                msg = None
            return r.status_code, "" if msg else f"no error message: {r.text[:200]}"

        status, problem = self.run(ask(), 120)
        self.answers.append((key, status, problem))
        self._step(f"api answered {status}")
        assert status in ALLOWED.get(state, set()), (
            f"{key} was {state}: answered {status} ({problem or 'no problem'}), "
            f"allowed {ALLOWED.get(state)}"
        )
        after = self.core.lifecycle.ready(entry)
        assert after is not None, f"{key} answered but is not loaded"
        if before is not None:
            assert after.pid == before.pid, f"{key} was loaded, yet a new process answered"

    @rule(hangs=st.booleans())
    def process_now(self, hangs: bool) -> None:
        """Process now: a short run (waited for) or one that hangs until cancelled."""
        self._step("process now")
        runs = self.core.runs
        busy = runs.status().busy
        # the runner reads FAMILYLOG_COMMAND once its task starts; nothing else differs
        self._use(self.world.hanging if hangs else self.world.settings)
        started = self.run(_on_loop(runs.process_now))
        assert started.message
        assert started.started is not busy, started.message
        if started.started and not hangs:
            record = self.run(started.wait(), 120)
            assert record is not None and record.outcome is Outcome.SUCCEEDED, record
        elif started.started:
            self.settle(lambda: runs.status().pid is not None)

    @rule()
    def cancel(self) -> None:
        self._step("cancel")
        runs = self.core.runs
        busy = runs.status().busy
        assert self.run(_on_loop(runs.cancel)) is busy
        if busy:
            self._step("cancel a run")
            record = self.run(runs.wait(), 120)
            assert record is not None and record.outcome is Outcome.CANCELLED, record
            assert not runs.status().busy

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
    def each_model_s_state_matches_its_process(self) -> None:
        """The lifecycle's state of a model and the port table agree: a model is alive
        where, and only where, a process of it is; at rest nothing waits or drains."""
        statuses = self.core.manager.statuses().values()
        for entry in self.core.catalogue.roles().values():
            state = self.core.lifecycle.state(entry)
            procs = [s for s in statuses if s.state.alive and s.spec and s.spec.file == entry.file]
            assert len(procs) <= 1, f"{entry.key} runs twice: {procs}"
            assert state.alive == bool(procs), (entry.key, state, procs)
            assert state not in (ModelState.WAITING, ModelState.DRAINING), (entry.key, state)
            if procs:
                assert state.value == procs[0].state.value, (entry.key, state, procs[0])

    @invariant()
    def every_api_request_was_answered(self) -> None:
        bad = [a for a in self.answers if a[2]]
        assert not bad, f"API requests without an answer or a message: {bad}"

    @invariant()
    def a_run_has_its_process(self) -> None:
        st_ = self.core.runs.status()
        if st_.pid is not None and st_.busy:
            self.run_pids.add(st_.pid)

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
            # no run (nor the hang stand-in's grandchild) outlives the app
            self.settle(lambda: not [p for p in self.run_pids if _alive(p)])
            assert not [p for p in psutil.Process().children(recursive=True) if _alive(p.pid)]
        finally:
            for pids in live_servers(self.world.binary).values():
                for pid in pids:
                    psutil.Process(pid).kill()
            for pid in self.run_pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.home, ignore_errors=True)


async def _on_loop(fn):
    """Call ``fn`` on the running loop (as the tray does): it starts tasks."""
    return fn()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.timeout(600)
def test_app_state_machine(llama_server_bin, tiny_model, tiny_model_b, tmp_path) -> None:
    familylog_dir = tmp_path / "FamilyLog"
    familylog_dir.mkdir()
    world = World(llama_server_bin, tiny_model, tiny_model_b, familylog_dir)
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
    # every rule was exercised ("cancel a run", a cancel that finds a run busy, depends on
    # the draw: when it happens its outcome is asserted in the rule, but it is not required)
    assert world.steps["api answered 200"], world.steps  # JIT loads answered
    drawn = {s for s in world.steps if not s.startswith("api answered")} - {"cancel a run"}
    assert drawn == {
        "load",
        "switch",
        "unload",
        "kill",
        "restart clean",
        "restart after crash",
        "api",
        "process now",
        "cancel",
    }, world.steps
    print(dict(world.steps))
