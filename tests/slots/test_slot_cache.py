"""The context kept across a switch, against the real llama-server and the tiny model: saved
when a model is unloaded, restored when it loads again (the prompt tokens evaluated drop),
never restored into another model file or context size, off with SLOT_CACHE=false, and a
save or restore that fails or is too slow skipped without failing anything."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import httpx
import psutil
import pytest

from app.core.models.launch_args import LoadConfig
from app.core.slots import client as slot_client
from app.core.slots.keeper import MIN_TOKENS
from tests.api.conftest import client

PREFIX = "Notes of the day. " + "hello world " * 30  # about 380 tokens of the tiny vocabulary
CTX = 1024


async def complete(c: httpx.AsyncClient, model: str, prompt: str) -> dict:
    r = await c.post(
        "/v1/completions",
        json={"model": model, "prompt": prompt, "max_tokens": 2, "temperature": 0},
    )
    assert r.status_code == 200, r.text
    return r.json()["timings"]


@pytest.fixture
def own_model(tmp_path: Path, tiny_model_b: Path) -> Path:
    """The LLM's file, a copy this test may touch."""
    return Path(shutil.copy(tiny_model_b, tmp_path / "own-model-F32.gguf"))


async def start(start_api, own_model: Path, **over):
    core = await start_api(
        RUN_MODE="switch", LLAMA_CTX_SIZE=CTX, LLM_MODEL_GGUF=str(own_model), **over
    )
    return core, core.catalogue.role("llm")


def command_line(core, entry) -> list[str]:
    inst = core.lifecycle.instance(entry)
    assert inst is not None and inst.pid
    return psutil.Process(inst.pid).cmdline()


async def test_the_context_is_saved_on_unload_and_restored_on_load(start_api, own_model) -> None:
    core, llm = await start(start_api, own_model)
    async with client(core) as c:
        first = await complete(c, llm.key, PREFIX + "one")
        assert first["prompt_n"] >= MIN_TOKENS  # all of it evaluated
        assert str(core.paths.slot_cache_dir) in command_line(core, llm)
        await core.lifecycle.unload(llm)
        saved = core.slots.store.entries()
        assert len(saved) == 1 and saved[0].tokens >= first["prompt_n"]
        assert (core.paths.slot_cache_dir / saved[0].name).stat().st_size == saved[0].size
        again = await complete(c, llm.key, PREFIX + "two")  # loads it again (JIT)
    assert [e.action for e in core.slots.events if e.ok] == ["save", "restore"]
    # only what is new is evaluated: the shared prefix comes from the restored slot
    assert again["cache_n"] >= first["prompt_n"] - 5
    assert again["prompt_n"] <= 10, again


async def test_without_the_cache_the_prompt_is_evaluated_again(start_api, own_model) -> None:
    core, llm = await start(start_api, own_model, SLOT_CACHE=False)
    async with client(core) as c:
        first = await complete(c, llm.key, PREFIX + "one")
        assert "--slot-save-path" not in command_line(core, llm)
        await core.lifecycle.unload(llm)
        again = await complete(c, llm.key, PREFIX + "two")
    assert core.slots.store.entries() == [] and not core.slots.events
    assert not list(core.paths.slot_cache_dir.glob("*.slot"))
    assert again["cache_n"] == 0 and again["prompt_n"] >= first["prompt_n"] - 5


async def test_not_restored_after_the_model_file_changed(start_api, own_model) -> None:
    core, llm = await start(start_api, own_model)
    async with client(core) as c:
        first = await complete(c, llm.key, PREFIX + "one")
        await core.lifecycle.unload(llm)
        assert len(core.slots.store.entries()) == 1
        st = own_model.stat()
        os.utime(own_model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new download
        again = await complete(c, llm.key, PREFIX + "two")
    assert [e.action for e in core.slots.events] == ["save"]
    assert again["cache_n"] == 0 and again["prompt_n"] >= first["prompt_n"] - 5


async def test_not_restored_with_another_context_size(start_api, own_model) -> None:
    core, llm = await start(start_api, own_model)
    async with client(core) as c:
        await complete(c, llm.key, PREFIX + "one")
        await core.lifecycle.unload(llm)
        await core.lifecycle.ensure(llm, LoadConfig(context_length=CTX // 2 + 256))
        again = await complete(c, llm.key, PREFIX + "two")
        assert again["cache_n"] == 0
        # the same context size as when it was saved: restored again
        await core.lifecycle.unload(llm)
        await core.lifecycle.ensure(llm, LoadConfig(context_length=CTX))
        third = await complete(c, llm.key, PREFIX + "three")
    assert [e.action for e in core.slots.events] == ["save", "save", "restore"]
    assert third["cache_n"] >= MIN_TOKENS


async def test_a_damaged_file_is_skipped_and_deleted(start_api, own_model, caplog) -> None:
    core, llm = await start(start_api, own_model)
    async with client(core) as c:
        first = await complete(c, llm.key, PREFIX + "one")
        await core.lifecycle.unload(llm)
        (saved,) = core.slots.store.entries()
        (core.paths.slot_cache_dir / saved.name).write_bytes(b"not a slot file" * 10)
        with caplog.at_level(logging.WARNING, "app.core.slots"):
            again = await complete(c, llm.key, PREFIX + "two")  # answered all the same
    assert "Did not restore the context" in caplog.text
    assert core.slots.store.entries() == []
    assert not (core.paths.slot_cache_dir / saved.name).exists()
    assert again["prompt_n"] >= first["prompt_n"] - 5


async def test_a_save_that_fails_or_is_too_slow_is_skipped(start_api, own_model, caplog) -> None:
    core, llm = await start(start_api, own_model)
    async with client(core) as c:
        await complete(c, llm.key, PREFIX + "one")
        # the folder llama-server writes to is gone: its save answers an error
        moved = core.paths.slot_cache_dir.with_name("moved")
        core.paths.slot_cache_dir.rename(moved)
        with caplog.at_level(logging.WARNING, "app.core.slots"):
            assert await core.lifecycle.unload(llm)
        assert "Did not save the context" in caplog.text
        moved.rename(core.paths.slot_cache_dir)
        # a save that would take longer than evaluating the prompt again (no time at all)
        await complete(c, llm.key, PREFIX + "one")
        core.slots.max_seconds = 0.0
        caplog.clear()
        with caplog.at_level(logging.WARNING, "app.core.slots"):
            assert await core.lifecycle.unload(llm)
        assert "took longer than evaluating it would" in caplog.text
    assert [(e.action, e.ok) for e in core.slots.events] == [("save", False), ("save", False)]
    assert core.slots.store.entries() == []
    assert core.lifecycle.instance(llm) is None  # unloaded all the same


@pytest.mark.parametrize("ports_open", [False, True])
async def test_a_short_context_is_not_saved(start_api, own_model, monkeypatch, ports_open) -> None:
    core, llm = await start(start_api, own_model, LLAMA_PORTS_OPEN=str(ports_open).lower())
    asked = []
    real = slot_client.list_slots
    monkeypatch.setattr(slot_client, "list_slots", lambda *a: asked.append(a) or real(*a))
    async with client(core) as c:
        timings = await complete(c, llm.key, "hello world")
        assert timings["prompt_n"] < MIN_TOKENS
        await core.lifecycle.unload(llm)
    assert core.slots.store.entries() == [] and not core.slots.events
    # every request went through the app: it knows the server holds too little to ask it
    # (a switch does not wait for GET /slots); with open ports others may have used it
    assert len(asked) == (1 if ports_open else 0)
