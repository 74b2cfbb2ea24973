"""``familylog-tray --download REPO [--file NAME | --quant QUANT]`` asks the running
(headless) app, through its API, to get a model from the stand-in hub; it prints the
progress and exits 0 once the model is listed, 1 with the reason, 3 with no app."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tests.conftest import free_port
from tests.support import hub as hub_support
from tests.support.app import headless_env, run_app, start_headless
from tests.support.hub import LLM_REPO, StandInHub, serve_pair

hub = hub_support.hub  # the fixtures
hub_files = hub_support.hub_files


def _download(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    p = run_app("--download", *args, env=env)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def test_download_without_an_app_says_so(app_home) -> None:
    code, out, err = _download({"API_PORT": str(free_port())}, LLM_REPO)
    assert code == 3 and out == ""
    assert "familylog-tray is not running" in err


def test_file_and_quant_go_with_download_and_not_together(app_home) -> None:
    p = run_app("--quant", "Q8_0", env={})
    assert p.wait(60) == 2 and "--file and --quant go with --download" in p.stderr.read()
    code, _out, err = _download({}, LLM_REPO, "--file", "a.gguf", "--quant", "Q8_0")
    assert code == 2 and "not allowed with argument" in err


def test_download_prints_progress_and_exits_0_once_listed(
    app_home, tmp_path: Path, hub: StandInHub, hub_files, tiny_model, llama_server_bin
) -> None:
    serve_pair(hub, hub_files)
    hub.publish_wrong_sha(LLM_REPO, "Qwen3-8B-F32.gguf")
    hub.add_repo("meta/Gated-GGUF", {"Gated-Q4_K_M.gguf": hub_files["llm_q8"]}, gated="manual")
    env = headless_env(llama_server_bin, tiny_model, MODEL_DIRS=tmp_path / "models")
    app = start_headless(env)
    try:
        code, out, err = _download(env, LLM_REPO, "--quant", "Q8_0")
        assert code == 0, out + err
        assert out.startswith(
            "Getting Qwen3-8B-Q8_0.gguf from Qwen/Qwen3-8B-GGUF (383 KB); job job_"
        )
        assert re.search(r"Qwen3-8B-Q8_0\.gguf: +\d+\.\d %", out), out
        assert out.rstrip().endswith('Downloaded Qwen3-8B-Q8_0.gguf: listed as "qwen/qwen3-8b".')
        assert (tmp_path / "models" / LLM_REPO / "Qwen3-8B-Q8_0.gguf").is_file()

        code, out, _err = _download(env, LLM_REPO, "--file", "Qwen3-8B-Q8_0.gguf")
        assert (code, out) == (
            0,
            'Qwen3-8B-Q8_0.gguf is downloaded already: listed as "qwen/qwen3-8b".\n',
        )

        code, out, err = _download(env, f"{LLM_REPO}:IQ1_S")
        assert code == 1 and "Its quantizations: F32, Q8_0" in err

        code, out, err = _download(env, "https://huggingface.co/meta/Gated-GGUF")
        assert code == 1 and "is gated: accept its licence" in err

        code, out, err = _download(env, LLM_REPO, "--quant", "F32")  # the bytes do not match
        assert code == 1 and "wrong SHA-256" in err and "not listed" in err
    finally:
        app.send_signal(signal.SIGTERM)
        assert app.wait(30) == 0
