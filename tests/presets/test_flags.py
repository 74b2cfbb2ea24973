"""The one mapping between a preset and llama-server's command line, both ways, and the
options a real llama-server build takes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.presets.fields import ModelPreset
from app.core.presets.flags import (
    SPEC_TYPE_FLAG,
    from_load_config,
    is_server_option,
    load_config_values,
    preset_args,
    read_args,
)
from app.core.presets.keys import extra, key_of
from app.core.servers.options import known_options, parse_help
from tests.servers.test_options import OLD_HELP

FULL = ModelPreset.model_validate(
    {
        "ctx-size": "4096",
        "n-gpu-layers": "0",
        "flash-attn": "off",
        "cache-type-k": "q8_0",
        "cache-type-v": "q8_0",
        "parallel": "2",
        "model-draft": "/m/draft.gguf",
        "draft-max": "8",
        "mmap": "false",
        "kv-offload": "true",
        "pinned": "true",
        "ttl": "60",
    }
)


def test_the_newest_spellings_by_default() -> None:
    args = preset_args(FULL)
    assert args == [
        "--flash-attn", "off",
        "--cache-type-k", "q8_0",
        "--cache-type-v", "q8_0",
        "--parallel", "2",
        "--kv-offload",
        "--no-mmap",
        "--model-draft", "/m/draft.gguf",
        "--spec-draft-n-max", "8",
        SPEC_TYPE_FLAG, "draft-simple",
    ]  # fmt: skip
    # the context, the GPU layers and the app's own keys are no extra options
    assert not {"--ctx-size", "4096", "--n-gpu-layers", "pinned", "60"} & set(args)


def test_an_older_builds_spellings() -> None:
    args = preset_args(FULL, parse_help(OLD_HELP))
    assert "--draft-max" in args and "--spec-draft-n-max" not in args
    assert SPEC_TYPE_FLAG not in args  # older builds start drafting with -md alone
    assert "--kv-offload" not in args  # on is its default; it has only --no-kv-offload


def test_the_real_binary_takes_the_draft_options(llama_server_bin: str) -> None:
    args = preset_args(FULL, known_options(llama_server_bin))
    assert args[args.index("--model-draft") :] == [
        "--model-draft", "/m/draft.gguf", "--spec-draft-n-max", "8", "--spec-type", "draft-simple",
    ]  # fmt: skip


def _server_fields() -> list[str]:
    return [n for n in ModelPreset.model_fields if is_server_option(n)]


def _value(name: str):
    field = ModelPreset.model_fields[name]
    if name == "rpc":  # llama.cpp RPC workers: host:port, comma-separated
        return st.sampled_from(["10.0.0.2:50052", "10.0.0.2:50052,[fd00::3]:50053"])
    ann = field.annotation
    if ann == bool | None:
        return st.booleans()
    if ann == int | None:
        return st.integers(min_value=1, max_value=1 << 20)
    if ann == float | None:
        return st.floats(min_value=0, max_value=1, allow_nan=False).map(lambda f: round(f, 3))
    if ann == str | None:
        return st.sampled_from(["/m/draft.gguf", "C:/models/d.gguf"])
    return st.sampled_from(list(field.annotation.__args__[0].__args__))  # a Literal


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={n: _value(n) for n in _server_fields()},  # type: ignore[arg-type]
    )
)
def test_what_is_written_is_read_back(values: dict) -> None:
    preset = ModelPreset.model_validate(values)
    assert read_args(["-lv", "4", *preset_args(preset), "--alias", "x"]).set_fields() == {
        n: v
        for n, v in preset.set_fields().items()
        # a bool equal to llama-server's default that the binary has no flag for is left out
        if preset_args(ModelPreset.model_validate({n: v}))
    }


def test_the_last_of_a_repeated_option_wins_and_short_forms_count() -> None:
    got = read_args(["--ctx-size", "8192", "-ngl", "99", "-fa", "on", "-c", "512", "-nkvo"])
    assert got.set_fields() == {
        "ctx_size": 512,
        "n_gpu_layers": 99,
        "flash_attn": "on",
        "kv_offload": False,
    }
    assert read_args(["-fa", "--mlock"]).set_fields() == {"flash_attn": "on", "mlock": True}


@dataclass
class LoadConfig:  # the shape of launch_args.LoadConfig
    context_length: int | None = None
    flash_attention: bool | None = None
    eval_batch_size: int | None = None
    offload_kv_cache_to_gpu: bool | None = None
    parallel: int | None = None
    gpu_layers: int | None = None
    rpc: tuple[str, ...] | None = None


def test_lm_studios_load_config_is_a_preset() -> None:
    config = LoadConfig(
        context_length=2048, flash_attention=True, offload_kv_cache_to_gpu=False, gpu_layers=20
    )
    preset = from_load_config(config)
    assert preset.set_fields() == {
        "ctx_size": 2048,
        "flash_attn": "on",
        "kv_offload": False,
        "n_gpu_layers": 20,
    }
    assert load_config_values(preset) == {
        "context_length": 2048,
        "flash_attention": True,
        "offload_kv_cache_to_gpu": False,
        "gpu_layers": 20,
    }
    assert from_load_config(None).is_empty()
    assert load_config_values(ModelPreset(flash_attn="auto")) == {}
    # the RPC workers a model runs across: a tuple there, llama-server's one value here
    workers = from_load_config(LoadConfig(rpc=("10.0.0.2:50052", "10.0.0.3:50052")))
    assert workers.set_fields() == {"rpc": "10.0.0.2:50052,10.0.0.3:50052"}
    assert preset_args(workers) == ["--rpc", "10.0.0.2:50052,10.0.0.3:50052"]
    assert load_config_values(workers) == {"rpc": ("10.0.0.2:50052", "10.0.0.3:50052")}


def test_a_request_over_a_preset() -> None:
    preset = ModelPreset(ctx_size=16384, n_gpu_layers=10, flash_attn="on", parallel=4)
    request = from_load_config(LoadConfig(context_length=4096, parallel=1))
    got = request.over(preset)
    assert (got.ctx_size, got.n_gpu_layers, got.flash_attn, got.parallel) == (4096, 10, "on", 1)


@pytest.mark.parametrize("name", list(ModelPreset.model_fields))
def test_every_field_says_how_it_maps(name: str) -> None:
    meta = extra(name)
    assert meta["applies"] in ("next load", "now", "restart")
    field = ModelPreset.model_fields[name]
    assert field.title and field.description and key_of(name) == field.alias
    server = is_server_option(name) or meta["spec"]
    # a setting llama-server reads applies at the next load; the app's own ones apply
    # at once (or at the next start of the app)
    assert (meta["applies"] == "next load") == bool(server)
