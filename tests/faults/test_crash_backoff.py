"""A GGUF that crashes llama-server at start (a real cut-short file, a real llama-server):
retried only after an exponential back-off, every request meanwhile answered at once with
the reason, and no working model is unloaded to make room for it while that crash is its
last word. A fixed file is tried again at once."""

from __future__ import annotations

import shutil

import httpx
import pytest

from app.core.model_rows import model_row
from app.core.servers.states import ServerState, StateEvent
from tests.conftest import free_port
from tests.support.app import AS_APP, make_core, settings_for
from tests.support.tiny_model import write_corrupt_model, write_tiny_model
from tests.support.wait import until


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    good = write_tiny_model(d / "good-Q8_0.gguf", seed=41, name="good")
    write_corrupt_model(d / "broken-Q8_0.gguf", good)
    return d


async def test_a_model_that_crashes_at_start_backs_off(llama_server_bin, folder, tmp_path):
    s = settings_for(
        llama_server_bin,
        MODEL_DIRS=str(folder),
        RUN_MODE="auto",
        MAX_LOADED_MODELS=1,
        API_PORT=free_port(),
    )
    core = make_core(s, **{**AS_APP, "api": True})
    starts: list[str] = []

    def count(e: StateEvent) -> None:
        if e.new is ServerState.STARTING:
            starts.append(e.status.model_name)

    core.manager.subscribe(count)
    await core.start()
    try:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        async with httpx.AsyncClient(base_url=core.api.url, timeout=60, trust_env=False) as c:
            answers = []
            for _ in range(20):
                r = await c.post("/v1/chat/completions", json={**body, "model": "broken-Q8_0"})
                answers.append((r.status_code, r.json()["error"]["message"]))
            assert starts == ["broken-Q8_0"], starts  # 1 start for 20 requests, not 21
            assert all(code == 503 for code, _ in answers)
            assert "exited with code 1" in answers[0][1]
            assert all(
                "crashed while starting" in m and "tried again in" in m for _, m in answers[1:]
            )
            assert "exited with code 1" in answers[-1][1]  # the reason, every time
            row = model_row(core, core.catalogue.resolve("broken-Q8_0"))
            assert row.state == "crashed at start" and "tried again in" in row.tip
            # a working model, loaded: the broken one is never started in its place
            r = await c.post("/v1/chat/completions", json={**body, "model": "good-Q8_0"})
            assert r.status_code == 200
            good = core.lifecycle.instance("good-Q8_0")
            # the first back-off (2 s) runs out; the next try would need the good one gone
            await until(lambda: core.lifecycle.start_problem("broken-Q8_0") is None, 10)
            r = await c.post("/v1/chat/completions", json={**body, "model": "broken-Q8_0"})
            assert r.status_code == 503
            assert "no running model is unloaded to make room" in r.json()["error"]["message"]
            assert starts == ["broken-Q8_0", "good-Q8_0"]
            assert core.lifecycle.instance("good-Q8_0").pid == good.pid
            # fixed (a good copy put in its place): tried at once
            shutil.copyfile(folder / "good-Q8_0.gguf", tmp_path / "fixed.gguf")
            (tmp_path / "fixed.gguf").replace(folder / "broken-Q8_0.gguf")
            await core.rescanner.rescan()
            r = await c.post("/v1/chat/completions", json={**body, "model": "broken-Q8_0"})
            assert r.status_code == 200, r.text
            await until(lambda: starts[-1] == "broken-Q8_0")
    finally:
        await core.stop()
