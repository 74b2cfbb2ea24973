"""Fixtures for the download tests: the stand-in hub and GGUF repositories to serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.desktop.gguf_tree import write_gguf, write_mmproj
from tests.support.hub import StandInHub
from tests.support.hub import hub as hub  # the fixture
from tests.support.tiny_model import write_tiny_model

VISION_REPO = "Qwen/Qwen3-VL-8B-Instruct-GGUF"
LLM_REPO = "Qwen/Qwen3-8B-GGUF"


@pytest.fixture(scope="session")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated GGUFs to serve: a vision model with two projectors, a chat model (the tiny
    llama llama-server answers with) in two quantizations, and a split model."""
    d = tmp_path_factory.mktemp("hub-files")
    f: dict[str, Path] = {}
    f["vl_q4"] = write_gguf(
        d / "Qwen3VL-8B-Instruct-Q4_K_M.gguf",
        "qwen3vl",
        name="Qwen3 VL 8B Instruct",
        ctx=262144,
        kv={
            "qwen3vl.block_count": 36,
            "qwen3vl.attention.head_count": 32,
            "qwen3vl.attention.head_count_kv": 8,
            "qwen3vl.embedding_length": 4096,
        },
    )
    f["vl_q8"] = write_gguf(d / "Qwen3VL-8B-Instruct-Q8_0.gguf", "qwen3vl", file_type=7)
    f["vl_mmproj_f16"] = write_mmproj(d / "mmproj-Qwen3VL-8B-Instruct-F16.gguf")
    f["vl_mmproj_q8"] = write_mmproj(d / "mmproj-Qwen3VL-8B-Instruct-Q8_0.gguf")
    f["llm_q8"] = write_tiny_model(d / "Qwen3-8B-Q8_0.gguf", name="tiny-qwen")
    f["llm_f32"] = write_tiny_model(d / "Qwen3-8B-F32.gguf", seed=3, name="tiny-qwen")
    f["split1"] = write_gguf(d / "Big-Q4_K_M-00001-of-00002.gguf", tensors={"a": (64, 64)})
    f["split2"] = write_gguf(d / "Big-Q4_K_M-00002-of-00002.gguf", tensors={"b": (64, 64)})
    f["readme"] = d / "README.md"
    f["readme"].write_text("# a model card\n")
    return f


def serve_pair(standin: StandInHub, files: dict[str, Path]) -> None:
    """The seed's pair on the stand-in hub: the vision repository and the LLM repository."""
    standin.add_repo(
        VISION_REPO,
        {
            "Qwen3VL-8B-Instruct-Q4_K_M.gguf": files["vl_q4"],
            "Qwen3VL-8B-Instruct-Q8_0.gguf": files["vl_q8"],
            "mmproj-Qwen3VL-8B-Instruct-F16.gguf": files["vl_mmproj_f16"],
            "mmproj-Qwen3VL-8B-Instruct-Q8_0.gguf": files["vl_mmproj_q8"],
            "README.md": files["readme"],
        },
        downloads=5000,
    )
    standin.add_repo(
        LLM_REPO,
        {
            "Qwen3-8B-Q8_0.gguf": files["llm_q8"],
            "Qwen3-8B-F32.gguf": files["llm_f32"],
            "README.md": files["readme"],
        },
        downloads=9000,
    )
