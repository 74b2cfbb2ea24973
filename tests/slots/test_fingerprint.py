"""What a saved slot is tied to: the model file, its context size and every option that may
change the KV cache; options that cannot (threads, batch sizes, the alias) do not count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.servers.states import LaunchSpec
from app.core.slots.fingerprint import cache_args, describe, fingerprint


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    model, binary = tmp_path / "m.gguf", tmp_path / "llama-server"
    model.write_bytes(b"GGUF" * 10)
    binary.write_bytes(b"ELF")
    return model, binary


def fp(model: Path, binary: Path, env: dict | None = None, **kw) -> str:
    spec = LaunchSpec(model_path=str(model), port=8080, **kw)
    return fingerprint(describe(spec, str(binary), env or {}))


def test_harmless_arguments_are_left_out() -> None:
    args = ["-lv", "4", "--alias", "x", "--threads", "3", "-b=512", "--metrics",
            "-ctk", "q8_0", "--flash-attn", "on", "--slot-save-path", "/s", "-np", "2"]  # fmt: skip
    assert cache_args(args) == ["-ctk", "q8_0", "--flash-attn", "on", "-np", "2"]


@pytest.mark.parametrize(
    "change",
    [
        {"ctx_size": 4096},
        {"extra_args": ("-ctk", "q8_0")},
        {"extra_args": ("--cache-type-v", "q4_0")},
        {"extra_args": ("-fa", "on")},
        {"extra_args": ("-np", "2")},
        {"extra_args": ("--no-kv-unified",)},
        {"extra_args": ("--rope-freq-base", "20000")},
        {"extra_args": ("--lora", "/x.gguf")},
    ],
)
def test_what_changes_the_cache_changes_the_fingerprint(files, change) -> None:
    model, binary = files
    assert fp(model, binary, ctx_size=2048) != fp(model, binary, **{"ctx_size": 2048, **change})


def test_the_model_file_binary_and_environment_count(files) -> None:
    model, binary = files
    before = fp(model, binary)
    assert fp(model, binary, extra_args=("--threads", "8", "-a", "k")) == before
    assert fp(model, binary, {"LLAMA_ARG_THREADS": "4"}) == before
    assert fp(model, binary, {"LLAMA_ARG_CACHE_TYPE_K": "q8_0"}) != before
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # the same name, a new file
    assert fp(model, binary) != before
    after = fp(model, binary)
    binary.write_bytes(b"ELF, another build")
    assert fp(model, binary) != after


def test_a_missing_model_raises(files, tmp_path) -> None:
    with pytest.raises(OSError):
        fp(tmp_path / "gone.gguf", files[1])
