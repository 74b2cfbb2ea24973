"""The RPC workers in a model's launch arguments: one reader (``rpc_of``) for whatever asks
for them (LLAMA_EXTRA_ARGS, a load config's ``rpc``, a preset), one writer (``with_rpc``)
for placement's choice; a running server is not "stale" for the workers placement chose."""

from __future__ import annotations

import pytest

from app.core.api.common import ApiError
from app.core.api.load_config import config_json, parse_load_config
from app.core.models.launch_args import (
    LoadConfig,
    launch_key,
    rpc_of,
    running_config,
    with_rpc,
)
from app.core.presets.flags import from_load_config, preset_args


def test_the_workers_an_argument_list_names() -> None:
    assert rpc_of(["-lv", "4"]) is None
    assert rpc_of(["--rpc", "a:1,b:2"]) == ("a:1", "b:2")
    assert rpc_of(["--rpc", "a:1", "-c", "512", "--rpc=b:2"]) == ("b:2",)  # the last wins
    assert rpc_of(["--rpc", ""]) == ()


def test_placement_s_choice_replaces_what_was_asked() -> None:
    args = ["-lv", "4", "--rpc", "a:1,b:2", "--alias", "k", "--rpc=c:3"]
    assert with_rpc(args, ()) == ["-lv", "4", "--alias", "k"]
    assert with_rpc(args, ("b:2",)) == ["-lv", "4", "--alias", "k", "--rpc", "b:2"]


def test_a_load_config_asks_for_workers_and_reads_them_back() -> None:
    config = LoadConfig(context_length=512, rpc=("a:1", "b:2"))
    assert preset_args(from_load_config(config)) == ["--rpc", "a:1,b:2"]
    running = running_config(512, ["-lv", "4", "--rpc", "b:2,a:1"])
    assert running.rpc == ("b:2", "a:1")
    assert config.differs(running) == []  # the same workers, in another order
    assert config.differs(running_config(512, ["--rpc", "a:1"])) == ["rpc"]
    assert LoadConfig().differs(running) == []  # asking none: any
    assert config_json(running)["rpc"] == ["b:2", "a:1"]
    assert "rpc" not in config_json(running_config(512, []))


def test_a_server_is_compared_without_its_workers() -> None:
    base = {"n_gpu_layers": -1, "ctx_size": 512, "mmproj": None}
    chosen = {**base, "extra_args": ("-lv", "4", "--rpc", "a:1")}
    wanted = {**base, "extra_args": ["-lv", "4"]}
    assert launch_key(chosen) == launch_key(wanted)
    assert launch_key({**base, "extra_args": ["-lv", "3"]}) != launch_key(wanted)


def test_a_load_request_names_workers_as_a_string_or_a_list() -> None:
    assert parse_load_config({"model": "m", "rpc": "10.0.0.2:50052"}).rpc == ("10.0.0.2:50052",)
    both = parse_load_config({"config": {"rpc": ["a:1", "b:2", "a:1"]}})
    assert both.rpc == ("a:1", "b:2")
    assert parse_load_config({"rpc": ""}).rpc is None
    for bad in (5, ["a:1", 2], "nohost", "a:99999"):
        with pytest.raises(ApiError) as e:
            parse_load_config({"rpc": bad})
        assert e.value.status == 400 and "rpc" in e.value.message
