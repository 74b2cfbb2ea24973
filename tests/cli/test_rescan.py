"""``familylog-tray --rescan`` and ``--unload`` beside a headless app whose loaded model's
file was moved away: the rescan says so, the unload by key works and says what happened.
Real processes: a ``--headless`` app, a real llama-server, the real command line."""

from __future__ import annotations

import os
import signal

import httpx

from tests.support.app import cli, headless_env, start_headless
from tests.support.tiny_model import write_tiny_model


def test_rescan_and_unload_a_model_whose_file_moved(
    app_home, llama_server_bin, tiny_model, tmp_path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny_model(folder / "wanderer-Q8_0.gguf", seed=31, name="wanderer")
    env = headless_env(llama_server_bin, tiny_model, MODEL_DIRS=folder, RUN_MODE="parallel")
    app = start_headless(env)
    api = f"http://127.0.0.1:{env['API_PORT']}"
    try:
        body = {"model": "wanderer-Q8_0", "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(f"{api}/v1/chat/completions", json={**body, "max_tokens": 2}, timeout=60)
        assert r.status_code == 200, r.text
        os.replace(folder / "wanderer-Q8_0.gguf", tmp_path / "moved.gguf")
        done = cli("--rescan", env=env)
        assert done.returncode == 0, done.stderr
        assert "wanderer-Q8_0 runs on (file moved or deleted)" in done.stdout
        (row,) = httpx.get(f"{api}/api/v0/ps", timeout=10).json()["models"]
        assert row["file"] == "file moved or deleted"
        ps = cli("--ps", env=env)
        assert "ready (file moved or deleted)" in ps.stdout
        done = cli("--unload", "wanderer-Q8_0", env=env)
        assert done.returncode == 0, done.stderr
        assert "Unloaded wanderer-Q8_0" in done.stdout
        assert httpx.get(f"{api}/api/v0/ps", timeout=10).json()["models"] == []
        assert cli("--unload", "all", env=env).returncode == 0
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(60)


def test_rescan_without_an_app_says_so(app_home) -> None:
    done = cli("--rescan", env={"API_PORT": "1"})
    assert done.returncode == 3
    assert "not running" in done.stderr
