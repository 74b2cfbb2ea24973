"""One lifecycle for every path, against the real server: every local GGUF by its key,
eviction by memory, busy instances never evicted, one process per model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.core.gpu.snapshot import GpuSnapshot
from app.core.lifecycle.placement import estimate_need
from app.core.settings.settings_apply import apply_settings
from tests.api.conftest import chat, client, servers
from tests.support.app import AS_APP, make_core
from tests.support.tiny_model import write_tiny_model
from tests.support.wait import until

VISION, LLM = "qwen/qwen3-vl-8b", "google/gemma-3-12b"


@pytest.fixture(scope="module")
def lmstudio_tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real models the way LM Studio stores them: publisher/model-folder/file."""
    root = tmp_path_factory.mktemp("lms-models")
    files = {
        "lmstudio-community/alpha-1b": root / "lmstudio-community/Alpha-1B-GGUF/Alpha-1B-Q8_0.gguf",
        "bartowski/beta-2b": root / "bartowski/beta-2b-GGUF/beta-2b-F32.gguf",
        "gamma-loose": root / "gamma-loose.gguf",
    }
    for i, (key, path) in enumerate(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tiny_model(path, seed=10 + i, name=key.rsplit("/", 1)[-1])
    return {"root": root, **files}


class FakeGpu:
    """A GPU of ``capacity`` bytes whose free memory is what our instances leave."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.core = None

    def free_bytes(self) -> int:
        used = 0
        for inst in self.core.lifecycle.snapshot():
            if inst.status.state.alive and inst.entry is not None:
                used += estimate_need(inst.entry, inst.status.spec.ctx_size)
        return self.capacity - used

    def probe(self, pids=()) -> GpuSnapshot:
        return GpuSnapshot("none")  # no per-process report: nothing to settle


async def _start(api_settings, gpu=None, **over):
    core = make_core(api_settings(**over), **AS_APP, gpu=gpu)
    if gpu is not None:
        gpu.core = core
    await core.start()
    return core


async def test_every_local_gguf_is_listed_and_answers_by_its_key(start_api, lmstudio_tree) -> None:
    core = await start_api(MODEL_DIRS=str(lmstudio_tree["root"]))
    keys = ["lmstudio-community/alpha-1b", "bartowski/beta-2b", "gamma-loose"]
    async with client(core) as c:
        listed = (await c.get("/api/v1/models")).json()["models"]
        assert [m["key"] for m in listed] == [VISION, LLM, *sorted(keys)]
        openai = (await c.get("/v1/models")).json()["data"]
        assert {m["id"] for m in openai} == {VISION, LLM, *keys}
        for key in keys:
            r = await c.post("/v1/chat/completions", json=chat(key))
            assert r.status_code == 200, r.text
            assert r.json()["model"] == key
            inst = core.lifecycle.ready(key)
            assert inst is not None and inst.status.spec.model_path == str(lmstudio_tree[key])
        loaded = (await c.get("/api/v1/models")).json()["models"]
        assert {m["key"] for m in loaded if m["loaded_instances"]} == set(keys)
    # the roles' ports were left for the roles: the others got free ports
    ports = {core.lifecycle.ready(k).port for k in keys}
    assert not ports & {core.settings.LLAMA_VISION_PORT, core.settings.LLAMA_LLM_PORT}
    assert len(servers()) == 3


async def test_auto_evicts_the_least_recently_used_idle_model(api_settings, lmstudio_tree) -> None:
    s = api_settings(RUN_MODE="auto", MODEL_DIRS=str(lmstudio_tree["root"]))
    probe = make_core(s, None, supervise=True)
    one = estimate_need(probe.catalogue.role("llm"), s.LLAMA_CTX_SIZE)  # all are tiny models
    gpu = FakeGpu(capacity=int(2.5 * one))  # room for two models, not three
    core = await _start(api_settings, gpu, RUN_MODE="auto", MODEL_DIRS=str(lmstudio_tree["root"]))
    try:
        async with client(core) as c:
            for model in ("lmstudio-community/alpha-1b", "bartowski/beta-2b"):
                assert (await c.post("/v1/chat/completions", json=chat(model))).status_code == 200
            # alpha is used again: beta is now the least recently used
            assert (
                await c.post("/v1/chat/completions", json=chat("lmstudio-community/alpha-1b"))
            ).status_code == 200
            r = await c.post("/v1/chat/completions", json=chat("gamma-loose"))
            assert r.status_code == 200, r.text
        loaded = {i.key for i in core.lifecycle.loaded()}
        assert loaded == {"lmstudio-community/alpha-1b", "gamma-loose"}
        assert len(servers()) == 2
    finally:
        await core.stop()


async def test_a_stream_survives_a_load_that_needs_its_memory(api_settings) -> None:
    probe = make_core(api_settings(), None, supervise=True)
    one = estimate_need(probe.catalogue.resolve(VISION), 512)
    gpu = FakeGpu(capacity=int(1.5 * one))  # one model at a time
    core = await _start(api_settings, gpu, RUN_MODE="auto")
    try:
        async with client(core) as c:
            body = chat(VISION, 200, stream=True, ignore_eos=True)
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                lines = r.aiter_lines()
                assert (await anext(lines)).startswith("data: ")
                port = core.lifecycle.ready(VISION).port
                other = asyncio.create_task(c.post("/v1/chat/completions", json=chat(LLM)))
                await until(lambda: core.lifecycle.is_draining(port))
                assert core.lifecycle.ready(LLM) is None  # the load waits for the stream
                rest = [line async for line in lines if line]
            assert rest[-1] == "data: [DONE]"
            finals = [json.loads(x[6:]) for x in rest[:-1]]
            assert finals[-1]["choices"][0]["finish_reason"] == "length"
            r = await asyncio.wait_for(other, 60)
            assert r.status_code == 200, r.text
        assert [i.key for i in core.lifecycle.loaded()] == [LLM]
    finally:
        await core.stop()


async def test_a_busy_model_is_never_evicted_the_load_answers_busy(start_api) -> None:
    core = await start_api(RUN_MODE="switch", EVICT_WAIT_SECONDS=0.3)
    async with client(core) as c:
        assert (await c.post("/v1/chat/completions", json=chat(VISION))).status_code == 200
        pid = core.lifecycle.ready(VISION).pid
        async with core.lifecycle.holding(VISION):  # a request in flight on the vision model
            r = await c.post("/api/v1/models/load", json={"model": LLM})
        assert r.status_code == 503, r.text
        assert f"busy: {VISION} is serving 1 request" in r.json()["error"]["message"]
        assert core.lifecycle.ready(VISION).pid == pid  # untouched
        assert core.lifecycle.ready(LLM) is None
        core.lifecycle.hold(core.lifecycle.ready(VISION), "familylog-run")  # a run holds it
        r = await c.post("/api/v1/models/load", json={"model": LLM})
        assert r.status_code == 503 and "held by a FamilyLog run" in r.text
        core.lifecycle.release("familylog-run")
        r = await c.post("/api/v1/models/load", json={"model": LLM})
        assert r.status_code == 200, r.text
    assert [i.key for i in core.lifecycle.loaded()] == [LLM]


@pytest.mark.parametrize("mode", ["switch", "parallel", "auto"])
async def test_tray_and_api_load_one_process_in_either_order(start_api, mode) -> None:
    core = await start_api(RUN_MODE=mode)
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", json={"model": LLM})
        assert r.status_code == 200, r.text
        pid = core.lifecycle.ready(LLM).pid
        # what the tray's "Load LLM" and the models window call
        inst = await core.lifecycle.ensure(core.catalogue.role("llm").key)
        assert inst.pid == pid
        await core.lifecycle.unload(LLM)
        # the other way round: the tray first, then the API and a chat
        inst = await core.lifecycle.ensure(LLM)
        r = await c.post("/api/v1/models/load", json={"model": LLM})
        assert (
            r.status_code == 200
            and (await c.post("/v1/chat/completions", json=chat(LLM))).status_code == 200
        )
        assert core.lifecycle.ready(LLM).pid == inst.pid
    assert len(servers()) == 1


async def test_settings_apply_changes_the_file_the_api_lists_and_serves(
    start_api, tmp_path
) -> None:
    core = await start_api()
    new_file = write_tiny_model(tmp_path / "fresh-llm-F32.gguf", seed=7, name="fresh-llm")
    async with client(core) as c:
        assert (await c.post("/v1/chat/completions", json=chat(LLM))).status_code == 200
        old_pid = core.lifecycle.ready(LLM).pid
        new = core.settings.model_copy(update={"LLM_MODEL_GGUF": str(new_file)})
        lines = apply_settings(core.live, core.lifecycle, new)
        listed = {m["key"]: m for m in (await c.get("/api/v1/models")).json()["models"]}
        assert listed[LLM]["display_name"] == "fresh-llm"
        assert listed[LLM]["loaded_instances"] == []  # the old process does not count
        assert any("no longer in the catalogue" in line for line in lines), lines
        r = await c.post("/v1/chat/completions", json=chat(LLM))
        assert r.status_code == 200, r.text
        inst = core.lifecycle.ready(LLM)
        assert inst.status.spec.model_path == str(new_file) and inst.pid != old_pid
    assert len(servers()) == 1  # the old file's server made room on the LLM port
