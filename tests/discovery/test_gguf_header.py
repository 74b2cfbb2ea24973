"""The GGUF header reader (app/core/discovery/gguf_header.py) and the header info cache, on real
GGUF files."""

from __future__ import annotations

from gguf import GGUFReader

from app.core.discovery.gguf_header import read_header
from app.core.discovery.gguf_info import InfoCache, read_gguf_info
from tests.support import tiny_model as tm


def test_header_matches_the_full_reader(tiny_model) -> None:
    info = read_gguf_info(tiny_model)
    full = GGUFReader(tiny_model)
    assert info.architecture == "llama" and info.name == "tiny-llama"
    assert info.context_length == tm.N_CTX_TRAIN
    assert (info.block_count, info.head_count, info.head_count_kv) == (
        tm.N_LAYERS,
        tm.N_HEAD,
        tm.N_HEAD_KV,
    )
    assert info.embedding_length == tm.N_EMBD
    assert info.n_params == sum(int(t.n_elements) for t in full.tensors)
    assert info.tensor_bytes == sum(int(t.n_bytes) for t in full.tensors)
    assert info.quantization == "F32" and info.bits_per_weight == 32.0
    head = tm.N_EMBD // tm.N_HEAD
    assert info.kv_cache_bytes(1000) == tm.N_LAYERS * 1000 * tm.N_HEAD_KV * 2 * head * 2


def test_header_reader_steps_over_long_arrays(tiny_model) -> None:
    ours = read_header(tiny_model)
    full = GGUFReader(tiny_model)
    assert set(ours.metadata) | set(ours.array_lengths) == {
        k for k in full.fields if not k.startswith("GGUF.")
    }  # same keys, same offsets walked
    assert "tokenizer.ggml.tokens" not in ours.metadata  # not decoded, only counted
    assert (
        ours.array_lengths["tokenizer.ggml.tokens"]
        == len(full.fields["tokenizer.ggml.tokens"].data)
        > 64
    )
    assert [t.name for t in ours.tensors] == [t.name for t in full.tensors]


def test_a_cut_file_still_has_a_header(corrupt_model) -> None:
    info = read_gguf_info(corrupt_model)  # the full reader fails on the missing tensor data
    assert info.architecture == "llama" and info.n_params > 0


def test_info_cache(tmp_path, tiny_model) -> None:
    cache = InfoCache()
    assert cache.get(str(tmp_path / "missing.gguf")) is None
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    assert cache.get(str(junk)) is None
    first = cache.get(str(tiny_model))
    assert first is not None and cache.get(str(tiny_model)) is first
    copy = tmp_path / "copy.gguf"
    tm.write_tiny_model(copy, name="first")
    assert cache.get(str(copy)).name == "first"
    tm.write_tiny_model(copy, name="second-name")  # another size: read again
    assert cache.get(str(copy)).name == "second-name"
