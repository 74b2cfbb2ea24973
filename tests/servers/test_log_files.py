"""A server's log rotates while it grows (not only when a server starts), and a model on a
free port (auto mode) keeps one log by its key, whatever port it gets. Real llama-servers
writing real logs."""

from __future__ import annotations

import httpx

from tests.conftest import free_port
from tests.support.app import AS_APP, make_core, settings_for
from tests.support.tiny_model import write_tiny_model
from tests.support.wait import until

LIMIT = 4096  # LOG_MAX_BYTES's least


async def test_a_growing_log_is_rotated_while_its_server_runs(llama_server_bin, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny_model(folder / "talker-Q8_0.gguf", seed=51, name="talker")
    s = settings_for(
        llama_server_bin,
        MODEL_DIRS=str(folder),
        RUN_MODE="auto",
        API_PORT=free_port(),
        LOG_MAX_BYTES=LIMIT,
        LOG_BACKUPS=2,
    )
    core = make_core(s, **{**AS_APP, "api": True})
    core.manager.rotator.interval = 0.1
    await core.start()
    try:
        inst = await core.lifecycle.ensure("talker-Q8_0")
        log = inst.status.log_path
        written = 0
        body = {"model": "talker-Q8_0", "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient(base_url=core.api.url, timeout=60, trust_env=False) as c:
            while written < 6 * LIMIT:  # -lv 4: each request logs a few kB
                before = log.stat().st_size
                r = await c.post("/v1/chat/completions", json={**body, "max_tokens": 4})
                assert r.status_code == 200
                written += max(0, log.stat().st_size - before)
                await until(lambda: log.stat().st_size <= LIMIT * 2, 10)  # rotated as it grows
        older = log.with_name(log.name + ".1")
        assert older.exists() and log.with_name(log.name + ".2").exists()
        assert not log.with_name(log.name + ".3").exists()  # LOG_BACKUPS=2
        assert core.manager.status(inst.port).pid == inst.pid  # rotated under a running server
    finally:
        await core.stop()


async def test_a_model_on_a_free_port_keeps_one_log_by_its_key(llama_server_bin, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny_model(folder / "roamer-Q8_0.gguf", seed=52, name="roamer")
    s = settings_for(llama_server_bin, MODEL_DIRS=str(folder), RUN_MODE="auto")
    core = make_core(s, **AS_APP)
    await core.start()
    try:
        ports = set()
        for _ in range(3):
            inst = await core.lifecycle.ensure("roamer-Q8_0")
            ports.add(inst.port)
            await core.lifecycle.unload("roamer-Q8_0")
        logs = sorted(p.name for p in core.paths.log_dir.glob("llama-server-*.log"))
        assert logs == ["llama-server-roamer-Q8_0.log"], (logs, ports)
        text = (core.paths.log_dir / logs[0]).read_text()
        assert text.count("familylog-tray start:") == 3  # every load, one file
    finally:
        await core.stop()
