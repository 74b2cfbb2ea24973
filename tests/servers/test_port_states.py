"""A port's server state changes only as ``SERVER_TRANSITIONS`` allows: an illegal change
raises and leaves the status as it was; the legal ones reach the listeners."""

from __future__ import annotations

import enum

import pytest

from app.core.servers.port_table import PortTable
from app.core.servers.states import SERVER_TRANSITIONS, ServerState
from app.core.transitions import IllegalTransitionError, Transitions

S = ServerState


def test_a_table_must_name_every_state() -> None:
    class Light(enum.Enum):
        RED = 1
        GREEN = 2

    with pytest.raises(ValueError, match="GREEN"):
        Transitions("light", Light, {Light.RED: {Light.GREEN}})


def test_the_manager_s_paths_are_allowed_and_nothing_else() -> None:
    allowed = {(old, new) for old, nexts in SERVER_TRANSITIONS.allowed.items() for new in nexts}
    assert allowed == {
        (S.STOPPED, S.STARTING),
        (S.STOPPED, S.FAILED),
        (S.STARTING, S.READY),
        (S.STARTING, S.STOPPING),
        (S.STARTING, S.STOPPED),
        (S.STARTING, S.FAILED),
        (S.READY, S.STOPPING),
        (S.READY, S.FAILED),
        (S.STOPPING, S.STOPPED),
        (S.STOPPING, S.FAILED),
        (S.FAILED, S.STARTING),
        (S.FAILED, S.STOPPED),
    }
    assert all(SERVER_TRANSITIONS.allows(s, s) for s in S)  # a new error, a new PID


def test_an_illegal_change_raises_and_changes_nothing() -> None:
    table = PortTable()
    events = []
    table.subscribe(events.append)
    slot = table._slot(8080)
    table._set(slot, state=S.STARTING, pid=10)
    table._set(slot, state=S.READY)
    with pytest.raises(IllegalTransitionError, match="Port 8080: server state ready -> starting"):
        table._set(slot, state=S.STARTING, pid=11)
    assert table.status(8080).state is S.READY and table.status(8080).pid == 10
    assert [(e.old, e.new) for e in events] == [(S.STOPPED, S.STARTING), (S.STARTING, S.READY)]
    with pytest.raises(IllegalTransitionError, match="only failed, stopping may follow"):
        table._set(slot, state=S.STOPPED)
