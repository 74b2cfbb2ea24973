"""Per-model settings through the one lifecycle, against the real llama-server: a model's
section decides its context and GPU layers, a request's load config goes over it, a pinned
model is never evicted, a draft model starts with -md and a draft with another vocabulary is
refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from app.core.lifecycle.instance import LoadFailedError
from app.core.models.launch_args import LoadConfig
from app.core.notices import Level
from app.core.presets.flags import read_args
from app.core.servers.keys import auth_headers, server_url
from app.core.settings.settings_apply import apply_settings
from tests.api.conftest import CTX, client, servers
from tests.support.tiny_model import write_tiny_model
from tests.support.wait import until

VISION, LLM = "qwen/qwen3-vl-8b", "google/gemma-3-12b"


def write_presets(core, text: str) -> None:
    path = core.paths.presets_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


async def server_get(core, key: str, path: str) -> dict:
    """``path`` of the model's own llama-server (with the key the app gave it)."""
    inst = core.lifecycle.ready(key)
    assert inst is not None
    async with httpx.AsyncClient(timeout=30, trust_env=False) as c:
        r = await c.get(server_url(inst.port, path, inst.status), headers=auth_headers(inst.status))
    r.raise_for_status()
    return r.json()


def command_line(core, key: str) -> list[str]:
    inst = core.lifecycle.ready(key)
    assert inst is not None and inst.pid
    return psutil.Process(inst.pid).cmdline()


async def test_a_model_loads_with_its_sections_context_and_gpu_layers(start_api) -> None:
    core = await start_api()
    write_presets(core, f"[{LLM}]\nctx-size = 1024\nn-gpu-layers = 0\nparallel = 1\n")
    await core.lifecycle.ensure(LLM)
    props = await server_get(core, LLM, "/props")
    assert props["default_generation_settings"]["n_ctx"] == 1024  # llama-server's own figure
    assert props["total_slots"] == 1
    ran = read_args(command_line(core, LLM))  # the real process's command line
    assert (ran.ctx_size, ran.n_gpu_layers, ran.parallel) == (1024, 0, 1)
    assert core.lifecycle.ready(LLM).settings.by_key() == {
        "ctx-size": 1024,
        "n-gpu-layers": 0,
        "parallel": 1,
    }
    # a model without a section: the app's settings
    await core.lifecycle.ensure(VISION)
    props = await server_get(core, VISION, "/props")
    assert props["default_generation_settings"]["n_ctx"] == CTX  # slots share one cache
    assert read_args(command_line(core, VISION)).ctx_size == CTX


async def test_a_requests_load_config_goes_over_the_preset(start_api) -> None:
    core = await start_api()
    write_presets(core, f"[*]\nparallel = 1\n\n[{LLM}]\nctx-size = 1024\nn-gpu-layers = 0\n")
    await core.lifecycle.ensure(LLM, LoadConfig(context_length=768))
    props = await server_get(core, LLM, "/props")
    assert props["default_generation_settings"]["n_ctx"] == 768
    ran = read_args(command_line(core, LLM))
    assert (ran.ctx_size, ran.n_gpu_layers, ran.parallel) == (768, 0, 1)
    # LM Studio's API shows what it runs with
    async with client(core) as c:
        listed = {m["key"]: m for m in (await c.get("/api/v1/models")).json()["models"]}
        assert listed[LLM]["loaded_instances"][0]["config"]["context_length"] == 768
        v0 = {m["id"]: m for m in (await c.get("/api/v0/models")).json()["data"]}
        assert v0[LLM]["loaded_context_length"] == 768
        assert v0[LLM]["loaded_settings"] == {"ctx-size": 768, "n-gpu-layers": 0, "parallel": 1}
        ps = {m["key"]: m for m in (await c.get("/api/v0/ps")).json()["models"]}
        assert ps[LLM]["settings"]["ctx-size"] == 768


async def test_a_pinned_model_is_never_evicted(start_api) -> None:
    core = await start_api(RUN_MODE="switch", IDLE_UNLOAD_MINUTES=0.005)
    write_presets(core, f"[{VISION}]\npinned = true\n")
    vision = await core.lifecycle.ensure(VISION)
    assert vision.pinned and vision.port == core.settings.LLAMA_PORT
    llm = await core.lifecycle.ensure(LLM)  # switch mode: one model at a time...
    # ...but the pinned one stays, on its port; the other loads beside it
    assert core.lifecycle.ready(VISION).pid == vision.pid
    assert llm.port != vision.port and not llm.pinned
    # idle unload passes over it too (0.3 s idle): the unpinned one goes, it stays
    assert core.idle is not None
    await until(lambda: core.lifecycle.ready(LLM) is None, 30)
    assert core.lifecycle.ready(VISION).pid == vision.pid
    # with MAX_LOADED_MODELS=1 too: over the cap rather than evict it
    await apply_settings(
        core.live, core.lifecycle, core.settings.model_copy(update={"MAX_LOADED_MODELS": 1})
    )
    await core.lifecycle.ensure(LLM)
    assert core.lifecycle.ready(VISION).pid == vision.pid
    # an explicit unload still stops it
    await core.lifecycle.unload(VISION)
    assert core.lifecycle.ready(VISION) is None


@pytest.fixture(scope="module")
def other_vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("other-vocab")
    return write_tiny_model(d / "other-vocab-Q8_0.gguf", seed=3, name="other", fim=True)


async def test_a_draft_model_starts_with_md_and_drafts(start_api, tiny_model_b) -> None:
    core = await start_api()
    # the LLM's file drafts for the vision model's: the same tokenizer, another model
    write_presets(core, f"[{VISION}]\nmodel-draft = {LLM}\ndraft-max = 4\n")
    await core.lifecycle.ensure(VISION)
    cmd = command_line(core, VISION)
    ran = read_args(cmd)
    assert ran.model_draft == str(tiny_model_b) and ran.draft_max == 4
    assert "--model-draft" in cmd  # llama-server's -md
    slots = await server_get(core, VISION, "/slots")
    assert slots and all(s["speculative"] for s in slots)
    inst = core.lifecycle.ready(VISION)
    async with httpx.AsyncClient(timeout=60, trust_env=False) as c:
        r = await c.post(
            server_url(inst.port, "/v1/chat/completions", inst.status),
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
            headers=auth_headers(inst.status),
        )
    assert r.status_code == 200 and r.json()["timings"]["draft_n"] > 0
    assert inst.settings.by_key()["model-draft"] == str(tiny_model_b)


async def test_a_draft_with_another_vocabulary_is_refused_before_anything_starts(
    start_api, other_vocab
) -> None:
    core = await start_api()
    notices = []
    core.notices.subscribe(notices.append)
    write_presets(core, f"[{LLM}]\nmodel-draft = {other_vocab}\n")
    before = {p.pid for p in servers()}
    with pytest.raises(LoadFailedError) as e:
        await core.lifecycle.ensure(LLM)
    assert "other-vocab-Q8_0.gguf cannot draft for tiny-other-F32.gguf: token 98 differs" in str(
        e.value
    )
    assert {p.pid for p in servers()} == before  # nothing started
    assert core.lifecycle.instance(LLM) is None
    assert notices and notices[-1].level is Level.ERROR and "token 98" in notices[-1].text


async def test_a_section_that_cannot_be_read_refuses_the_load_with_the_line(start_api) -> None:
    core = await start_api()
    write_presets(core, f"[{LLM}]\nctx-size = 1024\ncontext = 9\n")
    with pytest.raises(LoadFailedError, match=r"models.ini line 3: unknown option 'context'"):
        await core.lifecycle.ensure(LLM)
    assert core.lifecycle.instance(LLM) is None
    await core.lifecycle.ensure(VISION)  # another model is not held up


async def test_load_on_startup_and_a_saved_change_makes_the_instance_stale(start_api) -> None:
    core = await start_api()
    write_presets(core, f"[{LLM}]\nload-on-startup = true\nctx-size = 640\n")
    await core.load_at_start()
    inst = core.lifecycle.ready(LLM)
    assert inst is not None and inst.stale is None and core.lifecycle.ready(VISION) is None
    core.presets.save(core.catalogue.resolve(LLM), {"ctx-size": "1280"})
    assert "restart to apply" in (core.lifecycle.ready(LLM).stale or "")


async def test_a_presets_other_names_reach_the_catalogue(start_api) -> None:
    core = await start_api()
    core.presets.save(core.catalogue.resolve(LLM), {"alias": "family-llm, big"})
    assert core.catalogue.resolve("family-llm").key == LLM
    assert core.catalogue.resolve("big").key == LLM
