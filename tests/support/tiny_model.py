"""Generate a tiny but real GGUF model that llama-server loads and serves.

The model is a 2-layer llama with width 64 and random F32 weights. Its vocabulary is
byte-level (GPT-2 style) printable ASCII plus one control token, so every generated
token decodes to valid UTF-8 and chat completions succeed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter, PoolingType, TokenType

N_EMBD = 64
N_LAYERS = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
N_CTX_TRAIN = 2048


FIM = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
# A ChatML template that shows the tools it is given (the model "takes tools").
TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif -%}"
    "{%- for message in messages -%}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}"
)


def _vocab(fim: bool = False) -> tuple[list[str], list[int], list[str]]:
    # GPT-2 byte-level BPE: printable ASCII maps to itself, space to 'Ġ', newline to 'Ċ'.
    tokens = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]
    types = [TokenType.NORMAL] * len(tokens)
    merges = ["a b", "\u0120 t"]
    tokens += ["ab", "\u0120t"]
    types += [TokenType.NORMAL, TokenType.NORMAL]
    if fim:  # fill-in-the-middle tokens, so llama-server answers /infill
        tokens += FIM
        types += [TokenType.CONTROL] * len(FIM)
    tokens.append("<|endoftext|>")
    types.append(TokenType.CONTROL)
    return tokens, [int(t) for t in types], merges


def write_tiny_model(
    path: Path,
    *,
    seed: int = 0,
    name: str = "tiny-llama",
    pooling: int | None = None,
    fim: bool = False,
    chat_template: str | None = None,
    n_embd: int = N_EMBD,
    layers: int = N_LAYERS,
    n_ff: int = N_FF,
) -> Path:
    """Write a tiny llama GGUF to ``path`` and return it (``pooling``: llama.cpp's pooling
    type in the header, e.g. 4 for a reranker, which the catalogue then serves as one;
    ``fim``: with fill-in-the-middle tokens; ``chat_template``: a Jinja chat template;
    ``n_embd``, ``layers``, ``n_ff``: another width, depth, feed-forward size (a bigger
    model is slow enough on a CPU that a long prompt keeps its server busy for seconds)."""
    rng = np.random.default_rng(seed)
    tokens, types, merges = _vocab(fim)
    n_vocab = len(tokens)
    n_layers = layers
    head_dim = n_embd // N_HEAD

    w = GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(n_ff)
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
    if pooling is not None:
        w.add_uint32("llama.pooling_type", pooling)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    if fim:
        for i, key in enumerate(("fim_pre", "fim_suf", "fim_mid")):
            w.add_uint32(f"tokenizer.ggml.{key}_token_id", tokens.index(FIM[i]))

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", t(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", t(n_vocab, n_embd))
    kv_dim = head_dim * N_HEAD_KV
    for i in range(n_layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", t(n_embd, n_embd))
        w.add_tensor(p + "attn_k.weight", t(kv_dim, n_embd))
        w.add_tensor(p + "attn_v.weight", t(kv_dim, n_embd))
        w.add_tensor(p + "attn_output.weight", t(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", t(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", t(n_embd, n_ff))
        w.add_tensor(p + "ffn_up.weight", t(n_ff, n_embd))

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


def write_tiny_bert(path: Path, *, seed: int = 0, name: str = "tiny-bert") -> Path:
    """A tiny BERT embedding model (mean pooling, WordPiece vocabulary of lowercase letters)
    that llama-server serves with ``--embeddings``."""
    rng = np.random.default_rng(seed)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(97, 123)]
    tokens = special + letters + ["##" + c for c in letters]
    types = [TokenType.CONTROL] * len(special) + [TokenType.NORMAL] * (len(tokens) - 5)
    n_vocab, n_pos = len(tokens), 512

    w = GGUFWriter(str(path), "bert")
    w.add_name(name)
    w.add_context_length(n_pos)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYERS)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    w.add_pooling_type(PoolingType.MEAN)
    w.add_file_type(0)
    w.add_tokenizer_model("bert")
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in types])
    w.add_uint32("tokenizer.ggml.token_type_count", 2)
    w.add_bos_token_id(2)
    w.add_eos_token_id(3)
    w.add_uint32("tokenizer.ggml.cls_token_id", 2)
    w.add_uint32("tokenizer.ggml.seperator_token_id", 3)
    w.add_uint32("tokenizer.ggml.mask_token_id", 4)
    w.add_unk_token_id(1)
    w.add_pad_token_id(0)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", t(n_vocab, N_EMBD))
    w.add_tensor("token_types.weight", t(2, N_EMBD))
    w.add_tensor("position_embd.weight", t(n_pos, N_EMBD))
    w.add_tensor("token_embd_norm.weight", ones(N_EMBD))
    w.add_tensor("token_embd_norm.bias", zeros(N_EMBD))
    for i in range(N_LAYERS):
        p = f"blk.{i}."
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + part + ".weight", t(N_EMBD, N_EMBD))
            w.add_tensor(p + part + ".bias", zeros(N_EMBD))
        for norm in ("attn_output_norm", "layer_output_norm"):
            w.add_tensor(p + norm + ".weight", ones(N_EMBD))
            w.add_tensor(p + norm + ".bias", zeros(N_EMBD))
        w.add_tensor(p + "ffn_up.weight", t(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_up.bias", zeros(N_FF))
        w.add_tensor(p + "ffn_down.weight", t(N_EMBD, N_FF))
        w.add_tensor(p + "ffn_down.bias", zeros(N_EMBD))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_vocab_only(
    path: Path,
    tokens: list[str],
    *,
    tokenizer: str = "gpt2",
    bos: int | None = None,
    eos: int | None = None,
    add_bos: bool | None = None,
) -> Path:
    """A GGUF with a tokenizer and no tensors (llama.cpp's vocab-only files): enough for a
    check that reads vocabularies from headers, at any vocabulary size."""
    w = GGUFWriter(str(path), "llama")
    w.add_name(path.stem)
    w.add_tokenizer_model(tokenizer)
    w.add_token_list(tokens)
    w.add_token_types([int(TokenType.NORMAL)] * len(tokens))
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
