"""Generate a tiny but real vision pair: a text model and a LLaVA-style projector (mmproj)
that this llama-server build's multimodal library loads and runs.

The projector is a 2-block CLIP vision encoder (width 32, 8x8 patches of a 32x32 image)
with an MLP projector (``clip.projector_type`` = ``mlp``) whose output width equals the
text model's embedding width (64). Any image is resized to 32x32, so it becomes
``IMAGE_TOKENS`` (16) tokens in the prompt. Weights are random: the answers are noise,
the token counts are exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from tests.support.tiny_model import N_EMBD, write_tiny_model

IMAGE_SIZE = 32
PATCH_SIZE = 8
V_EMBD = 32
V_FF = 64
V_HEADS = 2
V_BLOCKS = 2
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 16

# Tensors without which llama-server crashes while loading the projector (exit 139, no
# message): leave one out with ``drop`` to make a broken projector file.
CRASHING = ("v.position_embd.weight", "v.patch_embd.weight", "mm.2.weight")


def write_tiny_mmproj(path: Path, *, seed: int = 0, drop: tuple[str, ...] = ()) -> Path:
    """Write the projector to ``path`` and return it (``drop``: tensor names to leave out)."""
    rng = np.random.default_rng(seed)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    w = GGUFWriter(str(path), "clip")
    w.add_name("tiny-mmproj")
    w.add_file_type(0)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    w.add_uint32("clip.vision.embedding_length", V_EMBD)
    w.add_uint32("clip.vision.feed_forward_length", V_FF)
    w.add_uint32("clip.vision.projection_dim", N_EMBD)
    w.add_uint32("clip.vision.block_count", V_BLOCKS)
    w.add_uint32("clip.vision.attention.head_count", V_HEADS)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    # Shapes are numpy's (outermost first): ggml's [8,8,3,32] is (32,3,8,8) here.
    tensors: dict[str, np.ndarray] = {
        "v.patch_embd.weight": t(V_EMBD, 3, PATCH_SIZE, PATCH_SIZE),
        "v.patch_embd.bias": zeros(V_EMBD),
        "v.position_embd.weight": t(IMAGE_TOKENS, V_EMBD),
    }
    for i in range(V_BLOCKS):
        p = f"v.blk.{i}."
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[p + part + ".weight"] = t(V_EMBD, V_EMBD)
            tensors[p + part + ".bias"] = zeros(V_EMBD)
        for norm in ("ln1", "ln2"):
            tensors[p + norm + ".weight"] = ones(V_EMBD)
            tensors[p + norm + ".bias"] = zeros(V_EMBD)
        tensors[p + "ffn_up.weight"] = t(V_FF, V_EMBD)
        tensors[p + "ffn_up.bias"] = zeros(V_FF)
        tensors[p + "ffn_down.weight"] = t(V_EMBD, V_FF)
        tensors[p + "ffn_down.bias"] = zeros(V_EMBD)
    tensors["mm.0.weight"] = t(N_EMBD, V_EMBD)
    tensors["mm.0.bias"] = zeros(N_EMBD)
    tensors["mm.2.weight"] = t(N_EMBD, N_EMBD)
    tensors["mm.2.bias"] = zeros(N_EMBD)
    for name, data in tensors.items():
        if name not in drop:
            w.add_tensor(name, data)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_narrow_model(path: Path) -> Path:
    """A text model half as wide as the projector's output: llama-server refuses the pair
    ("mismatch between text model (n_embd = 32) and mmproj (n_embd = 64)")."""
    return write_tiny_model(path, name="tiny-narrow", n_embd=N_EMBD // 2)


def write_tiny_vision_pair(folder: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """A text model and its projector side by side, named as LM Studio's folders have them
    (``<model>.gguf`` + ``mmproj-<model>.gguf``), so the catalogue pairs them."""
    folder.mkdir(parents=True, exist_ok=True)
    model = write_tiny_model(folder / "tiny-vision-F32.gguf", seed=seed, name="tiny-vision")
    mmproj = write_tiny_mmproj(folder / "mmproj-tiny-vision-F32.gguf", seed=seed)
    return model, mmproj
