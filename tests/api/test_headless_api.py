"""``familylog-tray --headless`` serves the API (it is attached by build_core)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

from tests.conftest import free_port


def test_headless_answers_the_lm_studio_api(app_home, tiny_model, llama_server_bin) -> None:
    api_port = free_port()
    env = dict(
        os.environ,
        LLAMA_SERVER_PATH=llama_server_bin,
        LLM_MODEL_GGUF=str(tiny_model),
        LLM_MODEL_ID="google/gemma-3-12b",
        LLAMA_LLM_PORT=str(free_port()),
        LLAMA_CTX_SIZE="512",
        API_PORT=str(api_port),
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "app.main", "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert "running headless" in p.stdout.readline(), p.stderr.read()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{api_port}/api/v1/models", timeout=30) as r:
            body = json.load(r)
        assert [m["key"] for m in body["models"]] == ["google/gemma-3-12b"]
        assert body["models"][0]["loaded_instances"] == []
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    log = (app_home / "logs" / "familylog-tray.log").read_text()
    assert f"LM Studio-compatible API on http://127.0.0.1:{api_port}" in log
