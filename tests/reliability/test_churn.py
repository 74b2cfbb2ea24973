"""Busy means busy, under churn: auto mode with a cap of two loaded models, four models, and
20 clients sending 10 requests each for models in turn, in several rounds (1,000 requests).

Every request must succeed, or be refused as documented busy (503 ``model_busy``); never a
502 (a server stopped under a request), never another 503. At no moment do more than two
model processes exist, or two of one model. No unload needs SIGKILL: a model is only ever
stopped idle. Real llama-servers, a real API, real HTTP clients."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.core.gpu.probe import GpuProber, ProbeUnavailable
from app.core.servers.states import ServerState
from tests.conftest import free_port
from tests.support.app import AS_APP, make_core
from tests.support.tiny_model import write_tiny_model

ROUNDS = int(os.environ.get("FLT_CHURN_ROUNDS", "5"))
CLIENTS, PER_CLIENT, MODELS, CAP = 20, 10, 4, 2


DATA = Path(__file__).resolve().parents[1] / "data"


def slow_nvidia_smi(seconds: float = 0.1) -> GpuProber:
    """A GPU as the app sees it through nvidia-smi: its recorded answers (tests/data), as
    slowly as the real tool gives them, so each free-memory look before a load yields to
    the requests (where the issue's busy model was evicted)."""
    answers = {
        "--query-gpu": (DATA / "nvidia-smi-gpus.csv").read_text(),
        "--query-compute-apps": (DATA / "nvidia-smi-apps.csv").read_text(),
    }

    def run(cmd: list[str]) -> str:
        time.sleep(seconds)
        return next(text for key, text in answers.items() if any(key in c for c in cmd))

    def no_nvml():
        raise ProbeUnavailable("no NVML here")

    return GpuProber(
        which=lambda n: "/usr/bin/nvidia-smi" if n == "nvidia-smi" else None,
        run=run,
        nvml_loader=no_nvml,
    )


@pytest.fixture
def four_models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for i in range(MODELS):
        write_tiny_model(folder / f"churn-{i}-Q8_0.gguf", seed=10 + i, name=f"churn-{i}")
    return folder


@pytest.mark.timeout(900)  # about 1 min on an idle 2-core machine; generous for a busy one
async def test_churn_never_stops_a_busy_model(llama_server_bin, four_models, caplog) -> None:
    caplog.set_level(logging.INFO)
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        LLAMA_SERVER_PATH=llama_server_bin,
        MODEL_DIRS=str(four_models),
        RUN_MODE="auto",
        MAX_LOADED_MODELS=CAP,
        LLAMA_CTX_SIZE=512,
        LLAMA_PORT=free_port(),
        LLAMA_VISION_PORT=free_port(),
        LLAMA_LLM_PORT=free_port(),
        API_PORT=free_port(),
        HUNG_PROBE_SECONDS=0,
        STOP_GRACE_SECONDS=10,
        VRAM_SETTLE_SECONDS=0,
    )
    core = make_core(s, **AS_APP, gpu=slow_nvidia_smi())
    await core.start()
    keys = core.catalogue.known_keys()
    assert len(keys) == MODELS, keys
    answers: collections.Counter[tuple[int, str]] = collections.Counter()
    worst: list[str] = []
    peak = [0]

    starts = [0]

    def look(event=None) -> None:
        if event is not None and event.new is ServerState.STARTING:
            starts[0] += 1
        alive = [st for st in core.manager.statuses().values() if st.state.alive]
        peak[0] = max(peak[0], len(alive))
        files = [st.spec.file for st in alive if st.spec]
        if len(alive) > CAP or len(files) != len(set(files)):
            worst.append(str([(st.port, st.state, st.model_name) for st in alive]))

    unsubscribe = core.manager.subscribe(look)

    async def client(c: httpx.AsyncClient, n: int) -> None:
        for i in range(PER_CLIENT):
            key = keys[(n + i) % MODELS]
            body = {
                "model": key,
                "messages": [{"role": "user", "content": f"hello {n} {i}"}],
                "max_tokens": 2,
            }
            r = await c.post("/v1/chat/completions", json=body)
            code = "" if r.status_code == 200 else (r.json().get("error") or {}).get("code", "")
            answers[(r.status_code, code)] += 1
            if r.status_code not in (200, 503) or (r.status_code == 503 and code != "model_busy"):
                worst.append(f"{r.status_code} {r.text[:300]}")

    t0 = time.monotonic()
    try:
        async with httpx.AsyncClient(
            base_url=core.api.url,
            timeout=300,
            trust_env=False,
            limits=httpx.Limits(max_connections=64),
        ) as c:
            for _ in range(ROUNDS):
                await asyncio.gather(*(client(c, n) for n in range(CLIENTS)))
    finally:
        unsubscribe()
        await core.stop()
    took = time.monotonic() - t0
    if os.environ.get("FLT_CHURN_LOG"):  # the app's log of the churn, to read
        Path(os.environ["FLT_CHURN_LOG"]).write_text(caplog.text)
    total = sum(answers.values())
    assert total == ROUNDS * CLIENTS * PER_CLIENT
    assert not worst, f"{len(worst)} bad moments/answers, first: {worst[:5]}; all: {answers}"
    assert answers[(200, "")] + answers[(503, "model_busy")] == total, answers
    assert peak[0] <= CAP
    killed = [r.getMessage() for r in caplog.records if "SIGKILL" in r.getMessage()]
    assert not killed, killed
    print(f"\nchurn: {total} requests in {took:.1f} s, {starts[0]} loads, answers {dict(answers)}")
    assert core.manager.statuses() == {} or all(
        st.state is ServerState.STOPPED for st in core.manager.statuses().values()
    )
