"""Security: servers on loopback only, keyed when API_KEY is set, the key never in a log,
on a command line or in a file others can read, and no subprocess through a shell."""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path

import httpx
import psutil

from app.core.logs.app_logging import setup_logging
from app.core.models.entry import LLM
from app.core.servers.server_log import redact
from app.core.settings.secure_files import (
    holds_secret,
    secure_existing,
    settings_file_mode,
    write_settings_file,
)
from tests.support.app import load_role, make_core, settings_for

KEY = "sk-test-7f3a9c-very-secret"
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


async def test_api_key_is_enforced_and_never_written(llama_server_bin, tiny_model, app_home):
    """Open ports (a FamilyLog that calls them directly): the servers ask for API_KEY."""
    settings = settings_for(
        llama_server_bin, LLM_MODEL_GGUF=str(tiny_model), API_KEY=KEY, LLAMA_PORTS_OPEN="true"
    )
    core = make_core(settings)
    handler = setup_logging(core.paths.app_log_file, console=False, level=logging.DEBUG)
    try:
        await core.start()
        st = await load_role(core, LLM)
        url = f"http://127.0.0.1:{st.port}/v1/chat/completions"
        async with httpx.AsyncClient(timeout=30, trust_env=False) as c:
            assert (await c.post(url, json=CHAT)).status_code == 401
            wrong = await c.post(url, json=CHAT, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await c.post(url, json=CHAT, headers={"Authorization": f"Bearer {KEY}"})
            assert ok.status_code == 200, ok.text
        proc = psutil.Process(st.pid)
        cmd = proc.cmdline()
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
        assert KEY not in " ".join(cmd)  # /proc/<pid>/cmdline is readable by every user
        assert proc.environ()["LLAMA_API_KEY"] == KEY  # readable by the owner only
        assert st.key == KEY and KEY not in repr(st)
        assert KEY not in core.paths.ownership_file.read_text()
        await core.stop()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    app_log = core.paths.app_log_file.read_text()
    assert "Starting llama-server:" in app_log and KEY not in app_log
    server_log = core.log_path(st.port).read_text()
    assert "familylog-tray start:" in server_log and KEY not in server_log


async def test_a_stray_llama_api_key_does_not_lock_the_app_out(
    llama_server_bin, tiny_model, monkeypatch
):
    monkeypatch.setenv("LLAMA_API_KEY", "from-the-users-shell")
    settings = settings_for(llama_server_bin, LLM_MODEL_GGUF=str(tiny_model), LLAMA_PORTS_OPEN="1")
    core = make_core(settings)
    await core.start()
    try:
        st = await load_role(core, LLM)
        async with httpx.AsyncClient(timeout=30, trust_env=False) as c:
            r = await c.post(f"http://127.0.0.1:{st.port}/v1/chat/completions", json=CHAT)
        assert r.status_code == 200
        assert "LLAMA_API_KEY" not in psutil.Process(st.pid).environ()
    finally:
        await core.stop()


def test_redact_hides_every_form_of_the_key() -> None:
    cmd = ["llama-server", "--api-key", KEY, "--api-key=" + KEY, "--port", "1"]
    out = redact(cmd)
    assert KEY not in " ".join(out)
    assert out == ["llama-server", "--api-key", "***", "--api-key=***", "--port", "1"]


SHELL_USE = re.compile(
    r"shell\s*=\s*True|os\.system\(|os\.popen\(|create_subprocess_shell|"
    r"subprocess\.(getoutput|getstatusoutput)\(|os\.exec\w*p?\(\s*['\"]/bin/sh"
)


def test_no_subprocess_through_a_shell() -> None:
    root = Path(__file__).resolve().parents[2] / "app"
    offenders = [
        f"{path.relative_to(root.parent)}:{n}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if SHELL_USE.search(line)
    ]
    assert offenders == []
    assert SHELL_USE.search("subprocess.run(cmd, shell=True)")  # the check can fail


def test_settings_file_mode_follows_the_content(tmp_path) -> None:
    assert holds_secret(f"API_KEY={KEY}\n") and holds_secret("OPENROUTER_API_KEY='x'\n")
    assert not holds_secret("API_KEY=\nLLAMA_PORT=8080\n")
    assert settings_file_mode(f"API_KEY={KEY}\n") == 0o600
    assert settings_file_mode("LLAMA_PORT=8080\n") == 0o644
    secret, plain = tmp_path / "secret.env", tmp_path / "plain.env"
    write_settings_file(secret, f"LLAMA_PORT=8080\nAPI_KEY={KEY}\n")
    write_settings_file(plain, "LLAMA_PORT=8080\n")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644
    assert secret.read_text() == f"LLAMA_PORT=8080\nAPI_KEY={KEY}\n"


async def test_start_makes_a_readable_settings_file_with_a_key_private(
    llama_server_bin, app_home
) -> None:
    app_home.mkdir(parents=True, exist_ok=True)
    settings = app_home / "settings.env"
    settings.write_text(f"API_KEY={KEY}\n")
    settings.chmod(0o644)
    core = make_core(settings_for(llama_server_bin))
    await core.start()
    await core.stop()
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert secure_existing(settings) is False  # already private: nothing to do
