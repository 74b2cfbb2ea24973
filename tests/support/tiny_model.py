"""Generate a tiny but real GGUF model that llama-server loads and serves.

The model is a 2-layer llama with width 64 and random F32 weights. Its vocabulary is
byte-level (GPT-2 style) printable ASCII plus one control token, so every generated
token decodes to valid UTF-8 and chat completions succeed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType

N_EMBD = 64
N_LAYERS = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
N_CTX_TRAIN = 2048


def _vocab() -> tuple[list[str], list[int], list[str]]:
    # GPT-2 byte-level BPE: printable ASCII maps to itself, space to 'Ġ', newline to 'Ċ'.
    tokens = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]
    types = [TokenType.NORMAL] * len(tokens)
    merges = ["a b", "\u0120 t"]
    tokens += ["ab", "\u0120t"]
    types += [TokenType.NORMAL, TokenType.NORMAL]
    tokens.append("<|endoftext|>")
    types.append(TokenType.CONTROL)
    return tokens, [int(t) for t in types], merges


def write_tiny_model(path: Path, *, seed: int = 0, name: str = "tiny-llama") -> Path:
    """Write a tiny llama GGUF to ``path`` and return it."""
    rng = np.random.default_rng(seed)
    tokens, types, merges = _vocab()
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD

    w = GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYERS)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # ALL_F32
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eos = n_vocab - 1
    w.add_bos_token_id(eos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(False)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", t(n_vocab, N_EMBD))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", t(n_vocab, N_EMBD))
    kv_dim = head_dim * N_HEAD_KV
    for i in range(N_LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", t(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_k.weight", t(kv_dim, N_EMBD))
        w.add_tensor(p + "attn_v.weight", t(kv_dim, N_EMBD))
        w.add_tensor(p + "attn_output.weight", t(N_EMBD, N_EMBD))
        w.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", t(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_down.weight", t(N_EMBD, N_FF))
        w.add_tensor(p + "ffn_up.weight", t(N_FF, N_EMBD))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_corrupt_model(path: Path, good: Path) -> Path:
    """A file with a valid GGUF header whose tensor data is cut short."""
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path
