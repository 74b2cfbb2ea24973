"""Check my models against a real app (its API, real llama-servers, the tiny vision pair, an
embedding model and a reranker): every check of every model, FamilyLog's pair in the seed's
order, failures named in words, nothing left loaded that was not loaded before, and no check
while a FamilyLog run holds a model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core.api.client import AppApi
from app.core.check.plan import choose, familylog_roles
from app.core.check.report import FAIL, PAIR, PASS, SKIP, table_text
from app.core.check.runner import ModelCheck
from app.paths import AppPaths
from tests.api.conftest import base_url
from tests.support.tiny_model import write_tiny_bert, write_tiny_model
from tests.support.tiny_vision import IMAGE_TOKENS, write_narrow_model, write_tiny_mmproj

VLM, LLM = "qwen/qwen3-vl-8b", "google/gemma-3-12b"
EMBED, RERANK = "tiny-embed", "tiny-reranker"
SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "bench" / "sample.png"


@pytest.fixture(scope="module")
def typed_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("check-models")
    write_tiny_bert(root / f"{EMBED}.gguf", name=EMBED)
    write_tiny_model(root / f"{RERANK}.gguf", seed=3, name=RERANK, pooling=4)
    return root


@pytest.fixture
def start_check(start_api, tiny_vision):
    """``await start_check(**settings)`` → (core, run) where ``await run(which)`` checks."""
    model, mmproj = tiny_vision

    async def start(**over):
        settings = {"VISION_MODEL_GGUF": str(model), "VISION_MMPROJ": str(mmproj), **over}
        core = await start_api(**settings)

        async def run(which: str | None = None, **kw):
            async with AppApi(base_url(core)) as api:
                keys, pair = choose(await api.models(), which, familylog_roles(core.settings))
                check = ModelCheck(
                    api,
                    image=SAMPLE.read_bytes(),
                    server_log=AppPaths.resolve().server_log,
                    **kw,
                )
                return await check.run(keys, pair)

        return core, run

    return start


def rows_of(report, subject: str) -> dict[str, tuple[str, str]]:
    return {r.check: (r.result, r.detail) for r in report.rows if r.subject == subject}


def loaded(core) -> set[str]:
    return {i.key for i in core.lifecycle.loaded()}


async def test_every_model_and_familylog_pair_pass(start_check, typed_models) -> None:
    core, run = await start_check(MODEL_DIRS=str(typed_models), RUN_MODE="switch")
    report = await run("all")
    text = table_text(report)
    assert report.ok, text
    vlm = rows_of(report, VLM)
    assert list(vlm) == ["load", "chat", "image", "unload"]
    assert all(result == PASS for result, _ in vlm.values()), text
    assert vlm["load"][1].endswith(" RAM") and " s, " in vlm["load"][1]
    assert "tokens/s" in vlm["chat"][1]
    assert f"the image was {IMAGE_TOKENS} tokens" in vlm["image"][1]
    assert "given back (its process ended)" in vlm["unload"][1]
    assert list(rows_of(report, LLM)) == ["load", "chat", "unload"]
    assert rows_of(report, EMBED)["embedding"] == (PASS, "64 dimensions")
    assert rows_of(report, RERANK)["embedding"] == (PASS, "a reranker: ranked 2 documents")

    pair = [(r.check, r.result, r.detail) for r in report.rows if r.subject == PAIR]
    assert [c for c, _, _ in pair] == [
        f"load the vision model ({VLM})",
        "the vision model describes a photo",
        "the switch to the LLM works",
        "the LLM answers",
        "both are unloaded at the end",
        "each has its log file",
    ]
    assert all(result == PASS for _, result, _ in pair), text
    assert f"{VLM} was unloaded to make room" in pair[2][2]  # RUN_MODE=switch: one port
    log = core.log_path(core.settings.LLAMA_PORT)  # RUN_MODE=switch: one port, one log
    assert pair[5][2] == f"both in {log} (one port, switched)" and log.is_file()
    assert not loaded(core)  # nothing was loaded before, nothing is now
    assert "All checks passed." in text and "MODEL" in text.splitlines()[0]


async def test_models_loaded_before_stay_loaded_and_come_back(start_check) -> None:
    """RUN_MODE=switch: the LLM was loaded; checking the vision model makes it go, and the
    check loads it again at the end. The vision model, not loaded before, is not left."""
    core, run = await start_check(RUN_MODE="switch")
    await core.lifecycle.ensure(core.catalogue.resolve(LLM))
    report = await run(VLM)
    assert report.ok, table_text(report)
    assert rows_of(report, LLM)["put back"][0] == PASS
    assert loaded(core) == {LLM}

    # a model loaded before and checked itself (named by its file): checked in place
    report = await run(Path(core.catalogue.resolve(LLM).path).name)
    llm = rows_of(report, LLM)
    assert llm["load"][0] == PASS and "loaded before the check" in llm["load"][1]
    assert llm["unload"] == (SKIP, "left loaded, as it was before the check")
    assert report.ok and loaded(core) == {LLM}


@pytest.mark.parametrize(
    ("problem", "words"),
    [
        ("missing mmproj", "missing file: "),
        ("broken projector", "broken projector file: llama-server crashed reading "),
        ("projector of another model", "the projector (mmproj) does not match the model"),
        ("corrupt model", "the model file is damaged"),
    ],
)
async def test_a_model_that_does_not_load_fails_with_the_reason_in_words(
    start_check, tmp_path: Path, corrupt_model: Path, tiny_vision, problem: str, words: str
) -> None:
    model, mmproj = tiny_vision
    settings = {
        "missing mmproj": {"VISION_MMPROJ": str(tmp_path / "gone.gguf")},
        "broken projector": {
            "VISION_MMPROJ": str(
                write_tiny_mmproj(tmp_path / "mmproj-x.gguf", drop=("mm.2.weight",))
            )
        },
        "projector of another model": {
            "VISION_MODEL_GGUF": str(write_narrow_model(tmp_path / "narrow.gguf"))
        },
        "corrupt model": {"VISION_MODEL_GGUF": str(corrupt_model)},
    }[problem]
    core, run = await start_check(**settings)
    report = await run()  # FamilyLog's two models and their pair
    vlm = rows_of(report, VLM)
    assert vlm["load"][0] == FAIL and vlm["load"][1].startswith(words), vlm["load"]
    assert {vlm[c] for c in ("chat", "image", "unload")} == {
        (SKIP, "not run: the model did not load")
    }
    assert all(r == PASS for r, _ in rows_of(report, LLM).values())  # the LLM is fine
    pair = rows_of(report, PAIR)
    assert pair[f"load the vision model ({VLM})"][0] == FAIL
    assert pair["the switch to the LLM works"][1].endswith(f"{VLM} was not loaded")
    assert pair["the LLM answers"][0] == PASS
    logs = pair["each has its log file"]
    assert logs[0] == PASS  # a start that failed has its log too; a missing file never starts
    assert logs[1].endswith("the vision model never started") == (problem == "missing mmproj")
    assert not report.ok and f"{len(report.failures)} checks failed." in table_text(report)
    assert not loaded(core)


async def test_no_check_while_a_familylog_run_holds_a_model(start_check) -> None:
    core, run = await start_check()
    inst = await core.lifecycle.ensure(core.catalogue.resolve(LLM))
    core.lifecycle.hold(inst, "familylog-run")
    report = await run("all")
    assert report.rows == [] and not report.ok
    assert f"a FamilyLog run is using {LLM}" in report.refused
    assert table_text(report).startswith("Not checked: a FamilyLog run is using")
    assert loaded(core) == {LLM}
    core.lifecycle.release("familylog-run")


async def test_a_run_that_starts_midway_stops_the_check(start_check) -> None:
    core, run = await start_check()
    llm = await core.lifecycle.ensure(core.catalogue.resolve(LLM))

    def progress(what: str) -> None:
        if what == f"{VLM}: a short chat":  # a FamilyLog run takes the LLM meanwhile
            core.lifecycle.hold(llm, "familylog-run")

    report = await run(progress=progress)
    stopped = rows_of(report, PAIR)["stopped"]
    assert stopped[0] == FAIL and f"a FamilyLog run is using {LLM}" in stopped[1]
    assert LLM not in {r.subject for r in report.rows}  # not checked beside the run
    assert loaded(core) == {LLM}  # the run's model stays; the check's own is gone
    core.lifecycle.release("familylog-run")


async def test_a_cancelled_check_leaves_nothing_loaded(start_check) -> None:
    core, run = await start_check()
    task: asyncio.Task | None = None

    def progress(what: str) -> None:
        if what == f"{VLM}: an image":
            assert task is not None
            task.cancel()

    task = asyncio.ensure_future(run(progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not loaded(core)


async def test_an_unknown_model_fails_naming_the_known_ones(start_check) -> None:
    core, run = await start_check()
    report = await run("no/such-model")
    assert [(r.subject, r.check, r.result) for r in report.rows] == [
        ("no/such-model", "model", FAIL)
    ]
    assert VLM in report.rows[0].detail and LLM in report.rows[0].detail
    assert not report.ok and not loaded(core)
