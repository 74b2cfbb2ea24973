"""The ``models.ini`` keys no other test sends to a real llama-server: ``min-p``,
``repeat-penalty`` and ``top-p`` (sampling defaults, which its ``/props`` shows back), and
``draft-min``, ``n-gpu-layers-draft`` and ``threads`` (which it does not show: each must be
on the process's command line, and the server must have started with them and draft)."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from app.core.presets.fields import ModelPreset
from app.core.presets.flags import preset_args
from app.core.servers.manager import LlamaServerManager
from app.core.servers.options import known_options


@pytest.fixture
async def manager(llama_server_bin: str, app_home: Path):
    m = LlamaServerManager(llama_server_bin, log_dir=app_home / "logs")
    yield m
    await m.shutdown()


async def test_min_p_repeat_penalty_and_draft_min_reach_the_server(
    manager, llama_server_bin, tiny_model, tiny_model_b, port
) -> None:
    preset = ModelPreset.model_validate(
        {
            "min-p": "0.2",
            "repeat-penalty": "1.3",
            "model-draft": str(tiny_model_b),
            "draft-min": "2",
            "draft-max": "4",
            "n-gpu-layers-draft": "0",
            "top-p": "0.8",
            "threads": "1",
        }
    )
    extra = preset_args(preset, known_options(llama_server_bin))
    st = await manager.load_model(
        str(tiny_model), port=port, ctx_size=512, n_gpu_layers=0, extra_args=extra
    )
    async with httpx.AsyncClient(timeout=30) as c:
        props = (await c.get(f"http://127.0.0.1:{st.port}/props")).json()
        slots = (await c.get(f"http://127.0.0.1:{st.port}/slots")).json()
    params = props["default_generation_settings"]["params"]
    assert params["min_p"] == pytest.approx(0.2)
    assert params["repeat_penalty"] == pytest.approx(1.3)
    assert params["top_p"] == pytest.approx(0.8)
    assert slots and all(s["speculative"] for s in slots)
    cmdline = psutil.Process(st.pid).cmdline()

    def value_of(*spellings: str) -> str:  # this build's spelling, or an older one's
        [at] = [i for i, a in enumerate(cmdline) if a in spellings]
        return cmdline[at + 1]

    assert value_of("--spec-draft-n-min", "--draft-min") == "2"
    assert value_of("--n-gpu-layers-draft", "--spec-draft-ngl", "-ngld") == "0"
    assert value_of("--threads", "-t") == "1"
