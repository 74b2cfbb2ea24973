"""The seed's pair for a machine with no models: the vision model with its projector, and
the largest suggested LLM that fits, with sizes and fit."""

from __future__ import annotations

import pytest

from app.core.downloads.refs import HubError
from app.core.downloads.starter import LLM_LADDER, get_offer, ladder_for, starter_offer
from tests.support.downloads import GB, Rig
from tests.support.hub import LLM_REPO, VISION_REPO, StandInHub, serve_ladder, serve_pair
from tests.support.wait import until


@pytest.mark.parametrize(
    ("free_gb", "llm"),
    [
        (100, "Qwen/Qwen3.5-27B-GGUF"),
        (16, "ggml-org/gpt-oss-20b-GGUF"),
        (10, "Qwen/Qwen3-8B-GGUF"),
        (6, "Qwen/Qwen3-4B-GGUF"),
        (2, "Qwen/Qwen3-1.7B-GGUF"),  # nothing fits: the smallest, said not to fit
    ],
)
async def test_the_llm_is_sized_to_the_free_memory(tmp_path, hub, hub_files, free_gb, llm):
    serve_pair(hub, hub_files)
    serve_ladder(hub, hub_files)
    rig = Rig(tmp_path)
    rig.free_ram = free_gb * GB
    vision, chosen = await starter_offer(rig.service())
    assert vision.role == "vision" and vision.files.repo == VISION_REPO
    assert vision.model.quant == "Q4_K_M"
    assert vision.model.mmproj is not None and vision.model.mmproj.name.endswith("-F16.gguf")
    assert chosen.role == "llm" and chosen.files.repo == llm
    assert vision.fit is not None and chosen.fit is not None
    assert "fits" in chosen.fit.describe()  # the tiny stand-in files fit anywhere
    text = vision.describe()
    assert text.startswith(
        "Vision: Qwen3VL-8B-Instruct-Q4_K_M.gguf + mmproj-Qwen3VL-8B-Instruct-F16.gguf"
    )


def test_ladder_goes_down_from_the_largest_that_fits():
    assert ladder_for(100 * GB) == list(LLM_LADDER)
    assert [c.repo for c in ladder_for(9 * GB)][0] == "Qwen/Qwen3-8B-GGUF"
    assert ladder_for(1 * GB) == [LLM_LADDER[-1]]


async def test_a_suggested_repository_the_hub_lacks_moves_down_the_ladder(
    tmp_path, hub: StandInHub, hub_files
):
    serve_pair(hub, hub_files)  # of the ladder, only Qwen3-8B
    rig = Rig(tmp_path)
    rig.free_ram = 100 * GB
    _vision, llm = await starter_offer(rig.service())
    assert llm.files.repo == LLM_REPO and llm.model.quant == "Q8_0"  # no Q4_K_M there
    asked = [r.path for r in hub.requests if r.path.startswith("/api/models/")]
    assert asked[:4] == [
        f"/api/models/{VISION_REPO}",
        "/api/models/Qwen/Qwen3.5-27B-GGUF",
        "/api/models/ggml-org/gpt-oss-20b-GGUF",
        "/api/models/Qwen/Qwen3-14B-GGUF",
    ]


async def test_getting_the_pair_sets_both_roles(tmp_path, hub, hub_files):
    serve_pair(hub, hub_files)
    rig = Rig(tmp_path)
    d = rig.service()
    await d.start()
    jobs = await get_offer(d, await starter_offer(d))
    assert [j.role for j in jobs] == ["vision", "llm"]
    await until(lambda: all(j.state == "completed" for j in jobs), 30)
    written = rig.paths.settings_file.read_text()
    vision, llm = jobs
    assert f"VISION_MODEL_GGUF={vision.model_path}" in written
    assert f"VISION_MMPROJ={vision.mmproj_path}" in written
    assert f"LLM_MODEL_GGUF={llm.model_path}" in written


async def test_no_network_is_said_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    with pytest.raises(HubError) as e:
        await starter_offer(Rig(tmp_path).service())
    assert e.value.kind == "offline" and "\n" not in str(e.value)
