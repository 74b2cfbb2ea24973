"""llama-server names its model by the LM Studio key (``--alias``), so the ``model`` field of
answers through the proxy is the key a client asked for, as LM Studio answers, not a path."""

from __future__ import annotations

import json

import openai
import psutil
import pytest

from app.config import Settings
from app.core.models.launch_args import extra_args_for
from tests.api.conftest import base_url, chat, client
from tests.support.app import load_role, make_core

VISION = "qwen/qwen3-vl-8b"
LLM = "google/gemma-3-12b"


@pytest.fixture(autouse=True)
def no_alias_env(monkeypatch) -> None:
    monkeypatch.delenv("LLAMA_ARG_ALIAS", raising=False)


def oai(core) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url(core)}/v1", api_key="lm-studio", max_retries=0)


def cmdline(core, port: int) -> list[str]:
    pid = core.manager.status(port).pid
    assert pid is not None
    return psutil.Process(pid).cmdline()


async def test_answers_name_the_key_through_the_openai_client(start_api) -> None:
    core = await start_api(RUN_MODE="switch")
    async with oai(core) as ai:
        for key in (VISION, LLM):  # JIT loads, each on LLAMA_PORT in turn
            done = await ai.chat.completions.create(
                model=key, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )
            assert done.model == key
            stream = await ai.chat.completions.create(
                model=key, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True
            )
            assert {chunk.model async for chunk in stream} == {key}
            text = await ai.completions.create(model=key, prompt="a", max_tokens=2)
            assert text.model == key
    cmd = cmdline(core, core.settings.LLAMA_PORT)
    assert cmd.count("--alias") == 1 and cmd[cmd.index("--alias") + 1] == LLM


async def test_models_loaded_from_the_tray_answer_with_the_key_too(start_api) -> None:
    core = await start_api()
    await load_role(core, "vision")
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(VISION, 2))
        assert r.status_code == 200 and r.json()["model"] == VISION
        # an alias of the key (the file name) reaches the same server, which names its key
        r = await c.post("/v1/chat/completions", json=chat("tiny-llama-Q8_0.gguf", 2))
        assert r.status_code == 200 and r.json()["model"] == VISION
    assert len(core.lifecycle.loaded()) == 1


async def test_the_users_own_alias_wins(start_api) -> None:
    core = await start_api(LLAMA_EXTRA_ARGS="--alias my-vision --flash-attn off")
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(VISION, 2))
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "my-vision"
        r = await c.post("/v1/chat/completions", json=chat(VISION, 2, stream=True))
        first = next(ln for ln in r.text.splitlines() if ln.startswith("data: {"))
        assert json.loads(first[6:])["model"] == "my-vision"
    cmd = cmdline(core, core.settings.LLAMA_VISION_PORT)
    assert cmd.count("--alias") == 1 and cmd[-3:] == ["my-vision", "--flash-attn", "off"]


@pytest.mark.parametrize(
    "extra, env, key, expected",
    [
        ("", None, VISION, ["--alias", VISION]),
        ("--flash-attn on", None, VISION, ["--flash-attn", "on", "--alias", VISION]),
        ("-a mine", None, VISION, ["-a", "mine"]),
        ("--alias=mine", None, VISION, ["--alias=mine"]),
        ("", "from-env", VISION, []),  # LLAMA_ARG_ALIAS: llama-server reads the user's own
        ("", None, "odd,key", []),  # llama-server would split it on the comma
        ("", None, "", ["--alias", "tiny-llama-Q8_0"]),  # no key set: the file's stem
    ],
)
def test_alias_argument(tiny_model, monkeypatch, extra, env, key, expected) -> None:
    if env:
        monkeypatch.setenv("LLAMA_ARG_ALIAS", env)
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        VISION_MODEL_GGUF=str(tiny_model),
        VISION_MODEL_ID=key,
        LLAMA_EXTRA_ARGS=extra,
    )
    core = make_core(s, None)  # no services
    assert extra_args_for(core.catalogue.role("vision"), s) == ["-lv", "4", *expected]
