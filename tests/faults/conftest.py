"""App-level fault tests: a real AppCore per test, stopped at teardown."""

from __future__ import annotations

import pytest

from app.core.app_core import AppCore
from tests.support.app import FAST, make_core, settings_for


@pytest.fixture
async def app(llama_server_bin):
    made: list[AppCore] = []

    def factory(policy=FAST, start: bool = True, **overrides) -> AppCore:
        core = make_core(settings_for(llama_server_bin, **overrides), policy)
        made.append(core)
        return core

    yield factory
    for core in made:
        await core.stop()
