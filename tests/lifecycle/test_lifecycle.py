"""One lifecycle for every path, against the real server: every local GGUF by its key,
eviction by memory, busy instances never evicted, one process per model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.core.gpu.snapshot import GpuSnapshot
from app.core.lifecycle.placement import estimate_need
from app.core.models.catalogue import Catalogue
from app.core.settings.settings_apply import apply_settings
from tests.api.conftest import CTX, chat, client, servers
from tests.support.app import AS_APP, make_core
from tests.support.gguf_tree import write_gguf
from tests.support.tiny_model import N_EMBD, N_HEAD, N_HEAD_KV, N_LAYERS, write_tiny_model
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


MIB = 1024**2


def need_by_hand(path: str | Path, ctx: int) -> int:
    """The README's estimate worked out here, not by the app: the file, K and V in f16 for
    every layer at ``ctx`` (the tiny model's header: 2 layers, 4 KV heads 64 / 4 = 16 wide),
    15 % on top, then 512 MiB."""
    kv = N_LAYERS * ctx * N_HEAD_KV * (2 * (N_EMBD // N_HEAD)) * 2
    return int((Path(path).stat().st_size + kv) * 1.15) + 512 * MIB


class FakeGpu:
    """A GPU of ``capacity`` bytes whose free memory is what our instances leave, each
    taking what ``need_by_hand`` says."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.core = None

    def free_bytes(self) -> int:
        used = 0
        for inst in self.core.lifecycle.snapshot():
            spec = inst.status.spec
            if inst.status.state.alive and spec is not None:
                used += need_by_hand(spec.model_path, spec.ctx_size)
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
    one = need_by_hand(lmstudio_tree["gamma-loose"], s.LLAMA_CTX_SIZE)  # all are tiny models
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


# Hang guards only: the load must wait for the stream however long it takes. With two
# busy processes on this 2-core machine the test took 13-46 s (1 s when quiet), and once
# past 60 s: the load gave up waiting (EVICT_WAIT_SECONDS) as the client gave up reading.
STREAM_GUARD = 600.0


async def test_a_stream_survives_a_load_that_needs_its_memory(api_settings) -> None:
    one = need_by_hand(api_settings().VISION_MODEL_GGUF, 512)
    gpu = FakeGpu(capacity=int(1.5 * one))  # one model at a time
    core = await _start(api_settings, gpu, RUN_MODE="auto", EVICT_WAIT_SECONDS=STREAM_GUARD)
    try:
        async with client(core, timeout=STREAM_GUARD) as c:
            # long enough to be still streaming when the other load is planned (busy machine)
            body = chat(VISION, 450, stream=True, ignore_eos=True)
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
            r = await asyncio.wait_for(other, STREAM_GUARD)
            assert r.status_code == 200, r.text
        assert [i.key for i in core.lifecycle.loaded()] == [LLM]
    finally:
        await core.stop()


@pytest.mark.parametrize("spare", [0, -1])
async def test_auto_weighs_the_estimate_to_the_byte(api_settings, spare: int) -> None:
    """Free memory equal to the hand-worked estimate: the second model loads beside the
    first; one byte less: the first is unloaded to make room. An estimate off by a byte
    either way fails one of the two."""
    s = api_settings(RUN_MODE="auto")
    both = need_by_hand(s.VISION_MODEL_GGUF, CTX) + need_by_hand(s.LLM_MODEL_GGUF, CTX)
    gpu = FakeGpu(capacity=both + spare)
    core = await _start(api_settings, gpu, RUN_MODE="auto")
    try:
        async with client(core) as c:
            for model in (VISION, LLM):
                r = await c.post("/v1/chat/completions", json=chat(model))
                assert r.status_code == 200, r.text
        loaded = {i.key for i in core.lifecycle.loaded()}
        assert loaded == ({VISION, LLM} if spare == 0 else {LLM})
    finally:
        await core.stop()


# Two real models' shapes, as their GGUF headers give them (tiny tensors: only the header
# is read), and their KV cache at 8,192 tokens in f16 worked out by hand.
REAL_SHAPES = {
    # Llama 3.1 8B: 32 layers, 8 KV heads of 4096 / 32 = 128: 32 x 8192 x 8 x 256 x 2 B
    "llama-3.1-8b": ("llama", 32, 32, 8, 4096, None, 1 * 1024**3),
    # Gemma 3 12B: 48 layers, 8 KV heads whose keys and values are 256 wide (not
    # 3840 / 16 = 240): 48 x 8192 x 8 x 512 x 2 B
    "gemma-3-12b": ("gemma3", 48, 16, 8, 3840, 256, 3 * 1024**3),
}


@pytest.mark.parametrize("name", sorted(REAL_SHAPES))
def test_the_estimate_of_a_real_shaped_model(api_settings, tmp_path, name: str) -> None:
    arch, layers, heads, kv_heads, width, kv_len, kv_by_hand = REAL_SHAPES[name]
    fields = {
        f"{arch}.block_count": layers,
        f"{arch}.attention.head_count": heads,
        f"{arch}.attention.head_count_kv": kv_heads,
        f"{arch}.embedding_length": width,
    }
    if kv_len:
        fields |= {f"{arch}.attention.key_length": kv_len, f"{arch}.attention.value_length": kv_len}
    path = write_gguf(tmp_path / "models" / f"{name}-Q4_K_M.gguf", arch, ctx=131072, kv=fields)
    settings = api_settings(MODEL_DIRS=str(tmp_path / "models"))
    catalogue = Catalogue(lambda: settings)
    assert catalogue.scan() == []  # the app's own reading of the header
    catalogue.refresh()
    entry = catalogue.resolve(f"{name}-Q4_K_M")
    by_hand = int((path.stat().st_size + kv_by_hand) * 1.15) + 512 * MIB
    assert estimate_need(entry, 8192) == by_hand
    # no context asked for: the model's own (131,072 tokens), 16 times the KV cache
    assert (
        estimate_need(entry, 0) == int((path.stat().st_size + 16 * kv_by_hand) * 1.15) + 512 * MIB
    )


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


async def test_max_loaded_models_caps_the_count_through_the_lifecycle(
    start_api, lmstudio_tree
) -> None:
    """MAX_LOADED_MODELS=2 with RUN_MODE=parallel (which otherwise unloads nothing): a third
    model unloads the least recently used idle one; with both in use it waits
    EVICT_WAIT_SECONDS and answers busy, unloading nothing."""
    a, b, g = "lmstudio-community/alpha-1b", "bartowski/beta-2b", "gamma-loose"
    core = await start_api(
        RUN_MODE="parallel",
        MAX_LOADED_MODELS=2,
        EVICT_WAIT_SECONDS=0.3,
        MODEL_DIRS=str(lmstudio_tree["root"]),
    )
    async with client(core) as c:
        for model in (a, b, a):  # a is used again: b is the least recently used
            assert (await c.post("/v1/chat/completions", json=chat(model))).status_code == 200
        pid_a = core.lifecycle.ready(a).pid
        assert (await c.post("/v1/chat/completions", json=chat(g))).status_code == 200
        assert {i.key for i in core.lifecycle.loaded()} == {a, g}
        assert core.lifecycle.ready(a).pid == pid_a and len(servers()) == 2
        async with core.lifecycle.holding(a), core.lifecycle.holding(g):  # both in use
            r = await c.post("/v1/chat/completions", json=chat(b))
        assert r.status_code == 503, r.text
        assert "busy: " in r.json()["error"]["message"]
        assert {i.key for i in core.lifecycle.loaded()} == {a, g} and len(servers()) == 2


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
        lines = await apply_settings(core.live, core.lifecycle, new)
        listed = {m["key"]: m for m in (await c.get("/api/v1/models")).json()["models"]}
        assert listed[LLM]["display_name"] == "fresh-llm"
        assert listed[LLM]["loaded_instances"] == []  # the old process does not count
        assert any("no longer in the catalogue" in line for line in lines), lines
        r = await c.post("/v1/chat/completions", json=chat(LLM))
        assert r.status_code == 200, r.text
        inst = core.lifecycle.ready(LLM)
        assert inst.status.spec.model_path == str(new_file) and inst.pid != old_pid
    assert len(servers()) == 1  # the old file's server made room on the LLM port
