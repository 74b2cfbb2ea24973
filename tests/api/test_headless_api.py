"""``familylog-tray --headless`` serves the API (it is attached by build_core)."""

from __future__ import annotations

import json
import signal
import urllib.request

from tests.support.app import headless_env, start_headless


def test_headless_answers_the_lm_studio_api(app_home, tiny_model, llama_server_bin) -> None:
    env = headless_env(llama_server_bin, tiny_model, LLM_MODEL_ID="google/gemma-3-12b")
    api_port = int(env["API_PORT"])
    p = start_headless(env)
    try:
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
