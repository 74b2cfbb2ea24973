"""Real GGUF files laid out like LM Studio's, llama.cpp's and Hugging Face's folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from gguf import GGUFWriter


def write_gguf(
    path: Path,
    arch: str = "llama",
    *,
    name: str | None = None,
    file_type: int | None = 15,
    ctx: int | None = 4096,
    size_label: str | None = None,
    tensors: dict[str, tuple[int, ...]] | None = None,
    vocab: int = 0,
    kv: dict[str, int | str] | None = None,
) -> Path:
    """A small but valid GGUF (metadata and F32 tensors) written with the gguf package."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(str(path), arch)
    if name:
        w.add_name(name)
    if ctx is not None:
        w.add_context_length(ctx)
    if file_type is not None:
        w.add_file_type(file_type)
    if size_label:
        w.add_size_label(size_label)
    for key, value in (kv or {}).items():  # e.g. {"bert.pooling_type": 4}
        if isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_uint32(key, value)
    if vocab:
        w.add_token_list([f"t{i}" for i in range(vocab)])
        w.add_token_merges([f"a{i} b{i}" for i in range(vocab)])
    for tname, shape in (
        tensors or {"token_embd.weight": (32, 8), "output.weight": (32, 8)}
    ).items():
        w.add_tensor(tname, np.zeros(shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_mmproj(path: Path) -> Path:
    return write_gguf(path, "clip", file_type=1, ctx=None, tensors={"v.patch_embd.weight": (4, 4)})


def build_tree(home: Path) -> dict[str, Path]:
    """Models the way the three caches store them; returns the interesting paths by name."""
    lms = home / ".lmstudio" / "models"
    p: dict[str, Path] = {}
    qwen_vl = lms / "lmstudio-community" / "Qwen3-VL-8B-Instruct-GGUF"
    p["qwen_vl"] = write_gguf(
        qwen_vl / "Qwen3-VL-8B-Instruct-Q4_K_M.gguf",
        "qwen3vl",
        name="Qwen3 VL 8B Instruct",
        size_label="8B",
        ctx=262144,
    )
    p["qwen_vl_mmproj"] = write_mmproj(qwen_vl / "mmproj-Qwen3-VL-8B-Instruct-F16.gguf")
    write_mmproj(qwen_vl / "mmproj-Qwen3-VL-8B-Instruct-Q8_0.gguf")
    gemma = lms / "lmstudio-community" / "gemma-3-4b-it-GGUF"
    p["gemma_q4"] = write_gguf(gemma / "gemma-3-4b-it-Q4_K_M.gguf", "gemma3", file_type=15)
    p["gemma_q8"] = write_gguf(gemma / "gemma-3-4b-it-Q8_0.gguf", "gemma3", file_type=7)
    p["gemma_mmproj"] = write_mmproj(gemma / "mmproj-model-f16.gguf")
    p["qwen_llm"] = write_gguf(
        lms / "bartowski" / "Qwen2.5-7B-Instruct-GGUF" / "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        "qwen2",
        file_type=None,
        ctx=32768,
        tensors={"token_embd.weight": (100, 10), "blk.0.ffn_up.weight": (10, 10)},
    )
    big = lms / "someone" / "Big-GGUF"
    p["big"] = write_gguf(big / "Big-Q4_K_M-00001-of-00002.gguf", tensors={"a": (10, 10)})
    write_gguf(big / "Big-Q4_K_M-00002-of-00002.gguf", tensors={"b": (5, 10)})
    # LM Studio's second folder, with a file that is not a GGUF at all.
    broken = home / ".cache" / "lm-studio" / "models" / "x" / "Broken-GGUF" / "broken.gguf"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a gguf at all")
    p["broken"] = broken
    # llama.cpp's flat download cache: two repositories side by side.
    lcpp = home / ".cache" / "llama.cpp"
    p["lcpp_gemma"] = write_gguf(lcpp / "ggml-org_gemma-3-4b-it-GGUF_gemma-3-4b-it-Q4_K_M.gguf")
    p["lcpp_gemma_mmproj"] = write_mmproj(
        lcpp / "ggml-org_gemma-3-4b-it-GGUF_mmproj-model-f16.gguf"
    )
    p["lcpp_qwen"] = write_gguf(lcpp / "ggml-org_Qwen3-1.7B-GGUF_Qwen3-1.7B-Q8_0.gguf")
    # The Hugging Face cache: snapshot files are links into blobs/.
    repo = home / ".cache" / "huggingface" / "hub" / "models--Qwen--Qwen3-4B-GGUF"
    blob = write_gguf(repo / "blobs" / "0123abcd", "qwen3", file_type=7)
    for rev in ("rev1", "rev2"):  # two snapshots of one blob: listed once
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        os.symlink(os.path.relpath(blob, snap), snap / "Qwen3-4B-Q8_0.gguf")
    p["hf"] = repo / "snapshots" / "rev1" / "Qwen3-4B-Q8_0.gguf"
    return p


def copy_model(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst
