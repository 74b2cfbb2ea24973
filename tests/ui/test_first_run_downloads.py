"""First run on a machine with no models: the set-up window offers the seed's pair with
sizes and fit, gets both in one click, can be saved while they download, and the app's
core finishes them, lists them and makes them FamilyLog's models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.core.downloads.jobs import COMPLETED, PAUSED
from app.core.models.entry import LLM, VISION
from app.core.settings.first_run import first_run_reasons
from app.paths import AppPaths
from app.settings_load import load_settings
from app.ui.first_run import FirstRunDialog, run_first_run
from tests.support import hub as hub_support
from tests.support.app import make_core
from tests.support.hub import VISION_REPO, StandInHub, serve_ladder, serve_pair

hub = hub_support.hub  # the fixtures
hub_files = hub_support.hub_files


@pytest.fixture
def setup_env(monkeypatch, tmp_path: Path, hub: StandInHub, hub_files, llama_server_bin):
    """No model anywhere; llama-server found; the hub serves the pair and every LLM the
    ladder may pick (the free memory of this machine decides which)."""
    serve_pair(hub, hub_files)
    serve_ladder(hub, hub_files)
    models = tmp_path / "models"
    monkeypatch.setenv("LLAMA_SERVER_PATH", llama_server_bin)
    monkeypatch.setenv("MODEL_DIRS", str(models))
    monkeypatch.setenv("LLAMA_CTX_SIZE", "512")
    return models


def test_no_models_offers_the_pair_and_saves_while_it_downloads(
    qtbot, arun, wait, setup_env: Path, hub: StandInHub, hub_files, llama_server_bin
):
    paths = AppPaths.resolve().ensure()
    settings = load_settings(paths)
    assert first_run_reasons(settings, paths)  # the set-up window opens
    half = hub_files["llm_q8"].stat().st_size // 2
    opened: list[FirstRunDialog] = []
    task = asyncio.ensure_future(
        run_first_run(settings, paths, on_open=lambda d: d is not None and opened.append(d))
    )
    wait(lambda: bool(opened))
    dialog = opened[0]
    wait(lambda: dialog.starter is not None and dialog.starter.get_button.isEnabled())
    starter = dialog.starter
    assert not dialog.save_button.isEnabled()  # no model yet, none coming
    vision, llm = starter.offers
    assert vision.files.repo == VISION_REPO and vision.model.mmproj is not None
    assert "+ mmproj-Qwen3VL-8B-Instruct-F16.gguf" in starter.offer_labels[0].text()
    assert "fits: needs about" in starter.offer_labels[1].text()
    assert starter.get_button.text().startswith("Get both (")
    llm_file = llm.model.files[0].path
    held = hub.hold(llm_file, at=half)

    starter.get_button.click()
    wait(lambda: len(starter.jobs) == 2)
    wait(lambda: held.is_set())
    assert LLM in dialog.choice.downloading
    assert dialog.save_button.isEnabled(), dialog.choice.problems()
    assert "downloading" in dialog.llm_label.text()
    assert dialog.save()
    assert arun(task) is True
    # The window closed: what is left paused, to be resumed by the app.
    record = json.loads(paths.downloads_file.read_text())
    states = {j["role"]: j["state"] for j in record["jobs"]}
    assert states[LLM] == PAUSED
    hub.release(llm_file)

    # The app starts (settings as saved) and its core finishes the pair.
    core = make_core(load_settings(paths), paths=paths)
    arun(core.start())
    try:
        jobs = {j.role: j for j in core.downloads.jobs()}
        wait(lambda: all(j.state == COMPLETED for j in jobs.values()), 60)
        s = core.live()
        assert Path(s.VISION_MODEL_GGUF) == jobs[VISION].model_path
        assert Path(s.VISION_MMPROJ) == jobs[VISION].mmproj_path
        assert Path(s.LLM_MODEL_GGUF) == jobs[LLM].model_path
        assert first_run_reasons(load_settings(paths), paths) == []  # no set-up next time
        role = core.catalogue.role(LLM)
        assert role.configured and role.problem() is None
        inst = arun(core.lifecycle.ensure(role))  # the real llama-server loads it
        assert inst.ready
    finally:
        arun(core.stop())


def test_no_network_says_so_in_one_line(qtbot, arun, wait, monkeypatch, llama_server_bin):
    monkeypatch.setenv("LLAMA_SERVER_PATH", llama_server_bin)
    paths = AppPaths.resolve().ensure()
    dialog = FirstRunDialog(load_settings(paths), paths, folders=[])
    qtbot.addWidget(dialog)
    dialog.show()
    arun(dialog.scan())
    assert dialog.starter is not None
    wait(lambda: dialog.starter.intro.text().startswith("Cannot suggest models"))
    text = dialog.starter.intro.text()
    assert text.startswith("Cannot suggest models: No network: cannot reach 127.0.0.1:9")
    assert "\n" not in text and not dialog.starter.get_button.isEnabled()
    arun(dialog.wait_idle())
    arun(dialog.close_downloads())
