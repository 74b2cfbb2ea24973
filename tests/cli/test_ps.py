"""``familylog-tray --ps [--json]`` asks the running (headless) app through its API."""

from __future__ import annotations

import json
import signal
import urllib.request

import psutil

from tests.conftest import free_port
from tests.support.app import headless_env, run_app, start_headless

LLM = "google/gemma-3-12b"


def _ps(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    p = run_app("--ps", *args, env=env)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def test_ps_without_an_app_says_so(app_home, llama_server_bin) -> None:
    code, out, err = _ps({"API_PORT": str(free_port())})
    assert code == 3 and out == ""
    assert "familylog-tray is not running" in err


def test_ps_lists_loaded_models_as_table_and_json(app_home, tiny_model, llama_server_bin) -> None:
    api_port = free_port()
    env = headless_env(
        llama_server_bin,
        tiny_model,
        LLM_MODEL_ID=LLM,
        API_PORT=api_port,
        API_KEY="sekret",
        IDLE_UNLOAD_MINUTES=30,
    )
    app = start_headless(env)
    try:
        assert _ps(env) == (0, "no models loaded\n", "")
        assert json.loads(_ps(env, "--json")[1]) == {"models": []}

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/v1/chat/completions",
            data=json.dumps(
                {"model": LLM, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
            ).encode(),
            headers={"Authorization": "Bearer sekret", "Content-Type": "application/json"},
        )
        with opener.open(req, timeout=60) as r:
            assert r.status == 200

        code, out, err = _ps(env, "--json")
        assert code == 0, err
        models = json.loads(out)["models"]
        assert len(models) == 1, out
        row = models[0]
        pid = row["pid"]
        assert psutil.Process(pid).name().startswith("llama-server")
        assert row["key"] == LLM and row["role"] == "llm" and row["type"] == "llm"
        assert row["state"] == "ready" and row["context_length"] == 512
        assert row["requests_served"] == 1 and row["memory_bytes"] > 0
        assert 0 < row["idle_unload_in_seconds"] <= 1800 and row["ttl_seconds"] == 1800
        assert row["speed"]["requests"] == 1 and row["speed"]["generation_tokens_per_second"] > 0
        # what it runs with, by models.ini's keys (no section: the app's settings)
        assert row["settings"]["ctx-size"] == 512 and row["settings"]["n-gpu-layers"] == -1

        code, out, err = _ps(env)
        assert code == 0, err
        header, line = out.splitlines()
        assert header.split()[:3] == ["KEY", "ROLE", "TYPE"] and line.endswith(" t/s")
        assert line.split()[:6] == [LLM, "llm", "llm", "ready", str(row["port"]), str(pid)]
        assert "SETTINGS" in header and " n-gpu-layers=-1 " in line

        wrong = {**env, "API_KEY": "wrong"}
        code, _, err = _ps(wrong)
        assert code == 1 and "401" in err
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(timeout=30)
        finally:
            if app.poll() is None:
                app.kill()
                app.wait()


def test_ps_memory_is_vram_when_the_driver_reports_the_process() -> None:
    import os

    from app.core.api.ps import _memory
    from app.core.gpu.snapshot import GpuProcess, GpuSnapshot

    me = os.getpid()
    gpu = GpuSnapshot(source="nvml", processes=(GpuProcess(pid=me, used_mib=100.0, device=0),))
    assert _memory(me, gpu) == {"memory_bytes": 100 * 1024 * 1024, "memory_kind": "vram"}
    none = GpuSnapshot(source="none")
    mem = _memory(me, none)
    assert mem["memory_kind"] == "ram" and mem["memory_bytes"] > 0


def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    p = run_app(*args, env=env)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def test_load_and_unload_reach_a_headless_app_through_its_api(
    app_home, tiny_model, llama_server_bin
) -> None:
    """No tray to forward to: --load/--unload use the API of the --headless app."""
    env = headless_env(llama_server_bin, tiny_model, LLM_MODEL_ID=LLM)
    app = start_headless(env)
    try:
        code, out, err = _cli(env, "--load", LLM)
        assert code == 0 and out.startswith(f"Loaded {LLM} in "), (out, err)
        code, out, err = _cli(env, "--load", LLM)
        assert code == 0 and "loaded already" in out, (out, err)
        servers = [p for p in psutil.Process(app.pid).children() if "llama" in p.name()]
        assert len(servers) == 1
        code, out, err = _cli(env, "--load", "no/such-model")
        assert code == 1 and "Unknown model 'no/such-model'" in err
        code, out, err = _cli(env, "--unload", "all")
        assert code == 0 and out.strip() == f"Unloaded {LLM}", (out, err)
        assert _ps(env) == (0, "no models loaded\n", "")
    finally:
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=60) == 0


def test_the_table_shows_memory_as_the_tray_does() -> None:
    """The MEMORY column in the app's one memory format (``app.core.units``), "-" unknown."""
    from app.cli.ps import table

    row = {"key": "m", "state": "ready", "port": 8080, "requests_served": 2}
    text = table([{**row, "memory_bytes": int(4.3 * 2**30)}, {**row, "key": "n"}])
    head, first, second = text.splitlines()
    at = head.index("MEMORY")
    assert first[at:].startswith("4.3 GB ")
    assert second[at:].startswith("- ")
