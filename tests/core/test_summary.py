"""What the tray says while a model loads and after the load is cancelled: its view holds
the server's state (an enum member) and says it in words, with Cancel as its one action."""

from __future__ import annotations

import asyncio
import contextlib

from app.core.lifecycle.instance import LoadFailedError
from app.core.lifecycle.model_state import ModelState
from app.core.models.entry import LLM
from app.core.servers.states import ServerState
from app.core.summary import model_view, status_line
from tests.support.app import make_core, settings_for
from tests.support.fakes import never_ready_server
from tests.support.wait import until


async def test_a_loading_model_offers_cancel_then_load_again(tmp_path, tiny_model) -> None:
    server = never_ready_server(tmp_path / "llama-server")
    settings = settings_for(str(server), LLM_MODEL_GGUF=str(tiny_model), LLAMA_READY_TIMEOUT=600)
    core = make_core(settings, policy=None)
    await core.start()
    entry = core.catalogue.role(LLM)
    try:
        before = model_view(core, entry)
        assert (before.state, before.state_text, before.action) == (
            ServerState.STOPPED,
            "not loaded",
            "load",
        )
        load = asyncio.create_task(core.lifecycle.ensure(entry))
        await until(lambda: core.lifecycle.state(entry) is ModelState.STARTING)
        view = model_view(core, entry)
        assert view.state is ServerState.STARTING and view.state_text == "loading"
        assert view.busy and view.enabled and view.action_text == "Cancel loading LLM"
        assert status_line(core).startswith("Loading LLM")
        assert await core.lifecycle.cancel_load(entry)
        with contextlib.suppress(LoadFailedError):
            await load
        await until(lambda: not core.lifecycle.is_busy(entry))
        after = model_view(core, entry)
        assert (after.state, after.action, after.enabled) == (ServerState.STOPPED, "load", True)
        assert core.lifecycle.state(entry) is ModelState.STOPPED
        assert status_line(core) == "Nothing loaded"
    finally:
        await core.stop()
