"""The download service against the stand-in hub: a download into LM Studio's layout,
listed once verified; a connection cut halfway and resumed, also after a restart; a wrong
checksum; a full disk refused before anything starts; cancel; a gated repository."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.downloads.jobs import CANCELLED, COMPLETED, FAILED, PAUSED, DownloadJob
from app.core.downloads.refs import DownloadRefused
from app.core.downloads.staging import STAGING
from tests.support.downloads import Rig
from tests.support.hub import LLM_REPO, VISION_REPO, StandInHub, serve_pair
from tests.support.wait import until

LLM_FILE = "Qwen3-8B-Q8_0.gguf"


@pytest.fixture
async def rig(tmp_path: Path, hub: StandInHub, hub_files) -> AsyncIterator[Rig]:
    serve_pair(hub, hub_files)
    r = Rig(tmp_path)
    yield r
    for d in r.made:
        await d.stop()


async def finished(job: DownloadJob, timeout: float = 30) -> DownloadJob:
    await until(lambda: not job.active, timeout)
    return job


def staged(rig: Rig) -> list[Path]:
    stage = rig.models / STAGING
    return [p for p in stage.rglob("*") if p.is_file()] if stage.exists() else []


async def test_download_goes_to_lm_studio_layout_and_is_listed_once_verified(
    rig: Rig, hub: StandInHub, hub_files
):
    d = rig.service()
    await d.start()
    job = await d.request(LLM_REPO, quant="Q8_0")
    assert job.total == hub_files["llm_q8"].stat().st_size
    await finished(job)
    assert job.state == COMPLETED, job.error
    dest = rig.dest(LLM_REPO, LLM_FILE)
    assert dest.read_bytes() == hub_files["llm_q8"].read_bytes()
    assert job.model_key == "qwen/qwen3-8b"
    entry = rig.catalogue.find("qwen/qwen3-8b")
    assert entry is not None and Path(entry.path) == dest
    assert staged(rig) == [] and not (rig.models / STAGING).exists()
    assert any("Downloaded Qwen3-8B-Q8_0.gguf" in n.title for n in rig.notices.history)
    # Asked again: it is there, nothing is fetched twice.
    fetched = len(hub.downloads_of(LLM_FILE))
    again = await d.request(LLM_REPO, quant="Q8_0")
    assert again.already and again.state == COMPLETED and again.model_key == "qwen/qwen3-8b"
    assert len(hub.downloads_of(LLM_FILE)) == fetched


async def test_vision_model_comes_with_its_projector(rig: Rig, hub_files):
    d = rig.service()
    await d.start()
    job = await d.request(VISION_REPO)
    assert [Path(f.dest).name for f in job.files] == [
        "mmproj-Qwen3VL-8B-Instruct-F16.gguf",
        "Qwen3VL-8B-Instruct-Q4_K_M.gguf",
    ]
    await finished(job)
    assert job.state == COMPLETED, job.error
    entry = rig.catalogue.find(job.model_key)
    assert entry is not None and entry.vision
    assert Path(entry.mmproj) == rig.dest(VISION_REPO, "mmproj-Qwen3VL-8B-Instruct-F16.gguf")


async def test_a_connection_cut_halfway_resumes_from_where_it_broke(
    rig: Rig, hub: StandInHub, hub_files
):
    size = hub_files["llm_q8"].stat().st_size
    half = size // 2
    hub.cut(LLM_FILE, at=half, times=1)
    d = rig.service()
    await d.start()
    job = await finished(await d.request(LLM_REPO, quant="Q8_0"))
    assert job.state == COMPLETED, job.error
    gets = hub.downloads_of(LLM_FILE)
    assert [g.range for g in gets] == [None, f"bytes={half}-"]
    assert rig.dest(LLM_REPO, LLM_FILE).read_bytes() == hub_files["llm_q8"].read_bytes()


async def test_a_connection_that_keeps_breaking_fails_keeps_the_part_and_resumes_later(
    rig: Rig, hub: StandInHub, hub_files
):
    size = hub_files["llm_q8"].stat().st_size
    half = size // 2
    hub.cut(LLM_FILE, at=half, times=4)  # the first try and its 3 retries
    d = rig.service()
    await d.start()
    job = await finished(await d.request(LLM_REPO, quant="Q8_0"))
    assert job.state == FAILED
    assert "broke off" in job.error and "get it again to resume" in job.error
    assert [p.stat().st_size for p in staged(rig)] == [half]
    assert not rig.dest(LLM_REPO, LLM_FILE).exists()
    assert rig.catalogue.find("qwen/qwen3-8b") is None
    again = await finished(await d.request(LLM_REPO, quant="Q8_0"))
    assert again.state == COMPLETED, again.error
    assert hub.downloads_of(LLM_FILE)[-1].range == f"bytes={half}-"
    assert rig.dest(LLM_REPO, LLM_FILE).read_bytes() == hub_files["llm_q8"].read_bytes()


async def test_a_download_resumes_after_the_app_restarts(rig: Rig, hub: StandInHub, hub_files):
    size = hub_files["llm_q8"].stat().st_size
    half = size // 2
    held = hub.hold(LLM_FILE, at=half)
    first = rig.service()
    await first.start()
    job = await first.request(LLM_REPO, quant="Q8_0")
    await until(lambda: held.is_set() and job.downloaded == half)
    # Partial bytes are never a model: the scan lists nothing.
    await rig.catalogue.rescan()
    assert rig.catalogue.entries() == []
    await first.stop()  # the app quits
    assert job.state == PAUSED
    record = json.loads((rig.paths.state_dir / "downloads.json").read_text())
    assert [j["state"] for j in record["jobs"]] == [PAUSED]
    assert [p.stat().st_size for p in staged(rig)] == [half]
    hub.release(LLM_FILE)

    second = rig.service()  # the app starts again
    await second.start()
    (resumed,) = second.jobs()
    assert resumed.id == job.id
    await finished(resumed)
    assert resumed.state == COMPLETED, resumed.error
    assert hub.downloads_of(LLM_FILE)[-1].range == f"bytes={half}-"
    assert rig.dest(LLM_REPO, LLM_FILE).read_bytes() == hub_files["llm_q8"].read_bytes()
    assert rig.catalogue.find("qwen/qwen3-8b") is not None


async def test_a_wrong_checksum_is_removed_never_listed_and_said(rig: Rig, hub: StandInHub):
    hub.publish_wrong_sha(LLM_REPO, LLM_FILE)
    d = rig.service()
    await d.start()
    job = await finished(await d.request(LLM_REPO, quant="Q8_0"))
    assert job.state == FAILED
    assert "wrong SHA-256" in job.error and "removed and is not listed" in job.error
    assert not rig.dest(LLM_REPO, LLM_FILE).exists()
    assert staged(rig) == []
    await rig.catalogue.rescan()
    assert rig.catalogue.entries() == []
    failed = [n for n in rig.notices.history if "failed" in n.title]
    assert failed and "wrong SHA-256" in failed[-1].text


async def test_not_enough_disk_is_refused_before_anything_is_fetched(
    rig: Rig, hub: StandInHub, hub_files
):
    rig.free_disk = hub_files["llm_q8"].stat().st_size + 1024  # the file, but no margin
    d = rig.service()
    await d.start()
    with pytest.raises(DownloadRefused) as e:
        await d.request(LLM_REPO, quant="Q8_0")
    assert e.value.code == "insufficient_disk" and e.value.status == 507
    assert "Not enough disk space for Qwen3-8B-Q8_0.gguf" in str(e.value)
    assert str(rig.models.parent) in str(e.value)  # the folder that exists, by name
    assert d.jobs() == [] and hub.downloads_of(LLM_FILE) == []


async def test_cancel_stops_and_deletes_what_arrived(rig: Rig, hub: StandInHub, hub_files):
    half = hub_files["llm_q8"].stat().st_size // 2
    held = hub.hold(LLM_FILE, at=half)
    d = rig.service()
    await d.start()
    job = await d.request(LLM_REPO, quant="Q8_0")
    await until(lambda: held.is_set() and job.downloaded == half)
    assert d.cancel(job.id)
    await finished(job, timeout=10)
    assert job.state == CANCELLED
    assert staged(rig) == [] and not rig.dest(LLM_REPO, LLM_FILE).exists()
    assert not d.cancel(job.id)  # nothing left to cancel


async def test_gated_repository_is_refused_with_what_to_do(rig: Rig, hub: StandInHub, hub_files):
    hub.add_repo("meta/Gated-GGUF", {"Gated-Q4_K_M.gguf": hub_files["llm_q8"]}, gated="auto")
    d = rig.service()
    await d.start()
    with pytest.raises(DownloadRefused) as e:
        await d.request("meta/Gated-GGUF")
    assert e.value.code == "gated" and e.value.status == 403
    assert "accept its licence" in str(e.value) and "HF_TOKEN" in str(e.value)
    assert d.jobs() == []


async def test_lm_studio_catalogue_names_fall_back_to_the_gguf_repository(rig: Rig):
    d = rig.service()
    await d.start()
    files, model = await d.find(parse("Qwen/Qwen3-8B"))  # no such repository: its -GGUF is
    assert files.repo == LLM_REPO and model.quant == "Q8_0"


async def test_a_file_in_the_hugging_face_cache_is_not_fetched_again(
    rig: Rig, hub: StandInHub, hub_files, tmp_path: Path
):
    repo = hub.repos[LLM_REPO]
    cache = Path.home() / ".cache" / "huggingface" / "hub"  # the tests' own home
    snap = cache / "models--Qwen--Qwen3-8B-GGUF" / "snapshots" / repo.commit
    snap.mkdir(parents=True)
    (snap / LLM_FILE).write_bytes(hub_files["llm_q8"].read_bytes())
    (cache / "models--Qwen--Qwen3-8B-GGUF" / "refs").mkdir()
    (cache / "models--Qwen--Qwen3-8B-GGUF" / "refs" / "main").write_text(repo.commit)
    d = rig.service()
    await d.start()
    job = await finished(await d.request(LLM_REPO, quant="Q8_0"))
    assert job.state == COMPLETED, job.error
    assert hub.downloads_of(LLM_FILE) == []
    assert rig.dest(LLM_REPO, LLM_FILE).read_bytes() == hub_files["llm_q8"].read_bytes()


def parse(text: str):
    from app.core.downloads.refs import parse_ref

    return parse_ref(text)
