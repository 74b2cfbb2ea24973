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


@pytest.fixture(scope="session")
def slow_model(models_dir):
    """A model big enough that one 2,000-token prompt keeps a one-thread llama-server's
    main loop busy for seconds (4 to 8 s on this machine, idle or busy): a long generation."""
    from tests.support.tiny_model import write_tiny_model

    return write_tiny_model(
        models_dir / "slow-256x12-F32.gguf", n_embd=256, layers=12, n_ff=768, seed=3
    )


@pytest.fixture(scope="session")
def slower_model(models_dir):
    """Twice the layers of ``slow_model``: its long prompt keeps the main loop busy past two
    hung limits of a second even on a quiet machine (``slow_model`` once took 1.95 s)."""
    from tests.support.tiny_model import write_tiny_model

    return write_tiny_model(
        models_dir / "slower-256x24-F32.gguf", n_embd=256, layers=24, n_ff=768, seed=4
    )


# One thread and one batch for the whole prompt: the main loop is busy in one piece.
SLOW_ARGS = {"LLAMA_EXTRA_ARGS": "--threads 1 -b 2048 -ub 2048 -np 1", "LLAMA_CTX_SIZE": 2048}
LONG_PROMPT = "x" * 2000  # one token per character
