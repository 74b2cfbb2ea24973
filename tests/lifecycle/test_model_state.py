"""Each model's state is one record with named states and one table of allowed changes:
it follows its server's port events, waits while a load makes room, drains while a load or
unload waits for its requests, and an illegal change raises and changes nothing."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from app.core.lifecycle.model_state import MODEL_TRANSITIONS, ModelRecords, ModelState
from app.core.servers.states import LaunchSpec, ServerState, ServerStatus, StateEvent
from app.core.transitions import IllegalTransitionError
from tests.support.app import make_core, settings_for

M, S = ModelState, ServerState
A = LaunchSpec("/models/a.gguf", 8080)
B = LaunchSpec("/models/b.gguf", 8080)


def event(port: int, spec: LaunchSpec, old: ServerState, new: ServerState) -> StateEvent:
    return StateEvent(port, old, new, ServerStatus(port, new, spec, ready_at=5.0))


def drive(records: ModelRecords, port: int, spec: LaunchSpec, *states: ServerState) -> None:
    for old, new in zip((S.STOPPED, *states), states, strict=False):
        records.follow(event(port, spec, old, new))


def test_the_table() -> None:
    allowed = {(old, new) for old, nexts in MODEL_TRANSITIONS.allowed.items() for new in nexts}
    assert allowed == {
        (M.STOPPED, M.WAITING),
        (M.STOPPED, M.STARTING),
        (M.STOPPED, M.FAILED),
        (M.WAITING, M.STARTING),
        (M.WAITING, M.FAILED),
        (M.WAITING, M.STOPPED),
        (M.STARTING, M.READY),
        (M.STARTING, M.STOPPING),
        (M.STARTING, M.STOPPED),
        (M.STARTING, M.WAITING),
        (M.STARTING, M.FAILED),
        (M.READY, M.DRAINING),
        (M.READY, M.STOPPING),
        (M.READY, M.FAILED),
        (M.READY, M.NOT_RESPONDING),
        (M.NOT_RESPONDING, M.READY),
        (M.NOT_RESPONDING, M.STOPPING),
        (M.NOT_RESPONDING, M.FAILED),
        (M.DRAINING, M.READY),
        (M.DRAINING, M.STOPPING),
        (M.DRAINING, M.FAILED),
        (M.STOPPING, M.STOPPED),
        (M.STOPPING, M.WAITING),
        (M.STOPPING, M.FAILED),
        (M.FAILED, M.WAITING),
        (M.FAILED, M.STARTING),
        (M.FAILED, M.STOPPED),
    }
    assert {s for s in M if s.alive} == {
        M.STARTING,
        M.READY,
        M.DRAINING,
        M.NOT_RESPONDING,
        M.STOPPING,
    }


def test_a_record_follows_its_process_and_keeps_its_last_use() -> None:
    records = ModelRecords(clock=lambda: 42.0)
    drive(records, 8080, A, S.STARTING, S.READY)
    a = records.of(A.file)
    assert (a.state, a.port, a.process.state) == (M.READY, 8080, S.READY)
    a.enter()
    a.ttl = 60.0
    drive(records, 8080, A, S.READY, S.STOPPING, S.STOPPED)
    assert a.state is M.STOPPED and a.process is None
    assert (a.in_flight, a.served, a.ttl, a.last_used) == (0, 0, None, 42.0)


def test_an_illegal_change_raises_and_changes_nothing() -> None:
    records = ModelRecords(clock=lambda: 0.0)
    drive(records, 8080, A, S.STARTING, S.READY)
    a = records.of(A.file)
    with pytest.raises(IllegalTransitionError, match=r"a\.gguf: model state ready -> waiting"):
        a.become(M.WAITING, "test")
    assert a.state is M.READY
    with pytest.raises(IllegalTransitionError, match="a second process on port 9090"):
        records.follow(event(9090, A, S.STOPPED, S.STARTING))
    assert (a.state, a.port) == (M.READY, 8080)


async def test_a_stop_while_a_load_goes_on_is_waiting() -> None:
    records = ModelRecords(clock=lambda: 0.0)
    drive(records, 8080, A, S.STARTING, S.READY)
    a = records.of(A.file)
    a.load = asyncio.get_running_loop().create_future()  # reloading with another config
    drive(records, 8080, A, S.READY, S.STOPPING, S.STOPPED)
    assert a.state is M.WAITING
    a.load.set_result(None)
    a.load = None
    a.load_ended(records.of(A.file).status)
    assert a.state is M.STOPPED


def test_a_failure_left_on_a_port_follows_the_port_not_the_model() -> None:
    records = ModelRecords(clock=lambda: 0.0)
    drive(records, 8080, A, S.STARTING, S.FAILED)
    a = records.of(A.file)
    assert a.state is M.FAILED
    drive(records, 9090, A, S.STARTING, S.READY)  # loaded again elsewhere
    records.follow(event(8080, A, S.FAILED, S.STOPPED))  # the old failure is cleared
    assert (a.state, a.port) == (M.READY, 9090)
    assert records.on_port(8080) is None
    drive(records, 9090, A, S.READY, S.FAILED)
    drive(records, 9090, B, S.STARTING)  # another model takes its port
    assert a.state is M.STOPPED and records.of(B.file).state is M.STARTING


async def test_draining_takes_no_new_requests_until_the_wait_ends() -> None:
    records = ModelRecords(clock=lambda: 0.0)
    drive(records, 8080, A, S.STARTING, S.READY)
    a = records.of(A.file)
    a.enter()
    with records.draining([a], "test"):
        assert a.state is M.DRAINING
        waiter = asyncio.create_task(records.wait_idle([a], 30))
        await asyncio.sleep(0)
        assert not waiter.done()
        a.leave()
        assert await waiter
    assert a.state is M.READY
    a.holders.add("run")
    assert not await records.wait_idle([a], 0.01)  # a hold counts
    assert await records.wait_idle([a], 0.01, holds=False)  # not for an unload
    assert records.release("run") == [a] and not a.busy


def transitions(caplog, name: str) -> list[str]:
    pattern = re.compile(rf"Model {re.escape(name)}: (\w+) -> (\w+)")
    out = []
    for r in caplog.records:
        m = pattern.match(r.getMessage())
        if m:
            out.append(f"{m[1]}>{m[2]}")
    return out


async def test_a_switch_moves_both_models_through_their_states(
    llama_server_bin, tiny_model, tiny_model_b, caplog
) -> None:
    settings = settings_for(
        llama_server_bin,
        RUN_MODE="switch",
        VISION_MODEL_GGUF=str(tiny_model),
        LLM_MODEL_GGUF=str(tiny_model_b),
    )
    core = make_core(settings, policy=None)
    await core.start()
    lifecycle = core.lifecycle
    try:
        with caplog.at_level(logging.INFO, logger="app.core.lifecycle.model_state"):
            assert lifecycle.state("tiny-llama-Q8_0") is M.STOPPED
            await lifecycle.ensure("tiny-llama-Q8_0")
            async with lifecycle.holding("tiny-llama-Q8_0"):
                assert lifecycle.state("tiny-llama-Q8_0") is M.READY
            await lifecycle.ensure("tiny-other-F32")  # switch: the first one makes room
            assert lifecycle.state("tiny-llama-Q8_0") is M.STOPPED
            assert lifecycle.state("tiny-other-F32") is M.READY
        assert transitions(caplog, tiny_model.name) == [
            "stopped>waiting",
            "waiting>starting",
            "starting>ready",
            "ready>draining",
            "draining>stopping",
            "stopping>stopped",
        ]
        assert transitions(caplog, tiny_model_b.name) == [
            "stopped>waiting",
            "waiting>starting",
            "starting>ready",
        ]
    finally:
        await core.stop()
