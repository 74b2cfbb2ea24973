"""Model files that move while the app runs: a loaded model whose file is moved away stays
listed as loaded ("file moved or deleted") and can be served and unloaded by its key; a
file replaced while loaded is shown as changed, and a crash restart loads the new file only
after saying so; rescans come from the API, and from the folder watch by themselves.

Real files, a real llama-server, the app's real API."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from app.core.lifecycle.commands import unload_command
from app.core.model_rows import model_row
from app.core.servers.states import FILE_CHANGED, FILE_GONE, ServerState, file_identity
from tests.conftest import free_port
from tests.support.app import AS_APP, make_core, notice, settings_for, titles
from tests.support.tiny_model import write_tiny_model
from tests.support.wait import until


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    write_tiny_model(d / "mover-Q8_0.gguf", seed=21, name="mover")
    write_tiny_model(d / "stayer-Q8_0.gguf", seed=22, name="stayer")
    return d


@pytest.fixture
async def app(llama_server_bin, folder):
    s = settings_for(
        llama_server_bin,
        MODEL_DIRS=str(folder),
        RUN_MODE="parallel",
        API_PORT=free_port(),
        RESTART_ON_CRASH=True,
    )
    core = make_core(s, **{**AS_APP, "api": True})
    core.watch.interval = 0.2
    await core.start()
    try:
        yield core
    finally:
        await core.stop()


def http(core) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=core.api.url, timeout=60, trust_env=False)


def chat(key: str) -> dict:
    return {"model": key, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


async def test_a_moved_file_leaves_the_model_loaded_and_unloadable_by_its_key(
    app, folder, tmp_path
) -> None:
    core = app
    inst = await core.lifecycle.ensure("mover-Q8_0")
    key = inst.key
    moved = tmp_path / "elsewhere.gguf"
    os.replace(folder / "mover-Q8_0.gguf", moved)
    async with http(core) as c:
        r = await c.post("/api/v0/models/rescan")
        assert r.status_code == 200, r.text
        assert r.json()["running_files"] == {key: FILE_GONE}
        # still listed, still loaded, still serving, and it says what became of its file
        (row,) = (await c.get("/api/v0/ps")).json()["models"]
        assert (row["key"], row["state"], row["file"]) == (key, "ready", FILE_GONE)
        assert key in [m["id"] for m in (await c.get("/v1/models")).json()["data"]]
        assert (await c.post("/v1/chat/completions", json=chat(key))).status_code == 200
        entry = core.catalogue.resolve(key)
        assert model_row(core, entry).state == f"ready ({FILE_GONE})"
        assert FILE_GONE in notice(core, key).title
        # unloading it by its key works, and then it is gone from the list
        r = await c.post("/api/v1/models/unload", json={"instance_id": key})
        assert r.status_code == 200, r.text
        assert core.manager.status(inst.port).state is ServerState.STOPPED
        assert key not in core.catalogue.known_keys()
        assert (await c.get("/api/v0/ps")).json()["models"] == []


async def test_a_replaced_file_is_shown_and_a_crash_restart_says_so(app, folder, tmp_path) -> None:
    core = app
    path = folder / "mover-Q8_0.gguf"
    inst = await core.lifecycle.ensure("mover-Q8_0")
    first = core.manager.status(inst.port)
    new = write_tiny_model(tmp_path / "new.gguf", seed=99, name="mover-v2")
    os.replace(new, path)  # as a download tool puts a finished file in place
    told = await _notice(core, FILE_CHANGED)  # the folder watch saw it, by itself
    assert told.title == f"mover-Q8_0: {FILE_CHANGED}" and core.watch.rescans >= 1
    again = core.lifecycle.instance("mover-Q8_0")
    assert again.file_note == FILE_CHANGED and again.pid == first.pid  # the old file serves
    os.kill(first.pid, signal.SIGKILL)
    await until(lambda: any(t.startswith("Restarted") for t in titles(core)), 60)
    said = titles(core)
    assert said.index(next(t for t in said if t.endswith("its file changed"))) < said.index(
        next(t for t in said if t.startswith("Restarted"))
    )
    now = core.manager.status(inst.port)
    assert now.file_id == file_identity(path) != first.file_id
    assert core.lifecycle.instance("mover-Q8_0").file_note is None


async def test_a_crash_of_a_model_whose_file_is_gone_is_not_restarted(app, folder) -> None:
    core = app
    inst = await core.lifecycle.ensure("mover-Q8_0")
    (folder / "mover-Q8_0.gguf").unlink()
    os.kill(inst.pid, signal.SIGKILL)
    n = await _notice(core, "not restarted")
    assert "moved or deleted" in n.text
    assert not any(t.startswith("Restarted") for t in titles(core))


async def _notice(core, part: str, timeout: float = 30):
    await until(lambda: any(part in t for t in titles(core)), timeout)
    return notice(core, part)


async def test_the_folder_watch_sees_files_come_and_go(app, folder) -> None:
    core = app
    assert sorted(core.catalogue.known_keys()) == ["mover-Q8_0", "stayer-Q8_0"]
    t0 = time.monotonic()
    write_tiny_model(folder / ".part-new.gguf", seed=5, name="new")  # a download in progress
    os.replace(folder / ".part-new.gguf", folder / "newcomer-Q8_0.gguf")
    await until(lambda: "newcomer-Q8_0" in core.catalogue.known_keys(), 30)
    # two looks of the watch (a change, then quiet) and the scan: well under its bound
    assert time.monotonic() - t0 < 0.2 * 3 + 10
    (folder / "stayer-Q8_0.gguf").unlink()
    await until(lambda: "stayer-Q8_0" not in core.catalogue.known_keys(), 30)


async def test_a_change_made_while_the_watch_rescans_is_not_lost(app, folder) -> None:
    """A file removed while a rescan runs (after the scan read the folder) is rescanned
    for at the next quiet look, not taken as already read."""
    core = app
    rescan = core.rescanner.rescan

    async def rescan_then_remove():
        result = await rescan()
        if (folder / "stayer-Q8_0.gguf").exists():  # the first rescan: a change under it
            (folder / "stayer-Q8_0.gguf").unlink()
        return result

    core.rescanner.rescan = rescan_then_remove
    write_tiny_model(folder / "newcomer-Q8_0.gguf", seed=5, name="new")
    await until(lambda: "newcomer-Q8_0" in core.catalogue.known_keys(), 30)
    await until(lambda: "stayer-Q8_0" not in core.catalogue.known_keys(), 30)
    assert core.watch.rescans == 2


async def test_a_file_that_comes_between_the_first_scan_and_the_watch_is_found(
    llama_server_bin, folder
) -> None:
    """The catalogue's first scan and the watch's first look are two reads of the folders:
    a file that comes between them (here: at once after the scan) is found by the watch,
    not taken as part of what the scan read (CI once lost a file so: the watch's first
    look came after the test wrote it)."""
    s = settings_for(llama_server_bin, MODEL_DIRS=str(folder), RUN_MODE="parallel")
    core = make_core(s, **AS_APP)
    core.watch.interval = 0.2
    scan = core.catalogue.rescan

    async def scan_then_a_file_comes():
        result = await scan()
        if not (folder / "late-Q8_0.gguf").exists():
            write_tiny_model(folder / "late-Q8_0.gguf", seed=6, name="late")
        return result

    core.catalogue.rescan = scan_then_a_file_comes
    await core.start()
    try:
        await until(lambda: "late-Q8_0" in core.catalogue.known_keys(), 30)
        assert core.watch.rescans >= 1
    finally:
        await core.stop()


async def test_unload_says_when_a_model_could_not_be_unloaded(app, monkeypatch) -> None:
    """What ``--unload`` prints is what happened: a server that is still there is an error."""
    core = app
    inst = await core.lifecycle.ensure("stayer-Q8_0")

    async def refuses(port: int) -> None:
        return None  # as a stop that left the process running

    monkeypatch.setattr(core.manager, "unload_model", refuses)
    ok, message = await unload_command(core.lifecycle, inst.key)
    assert not ok and f"Could not unload {inst.key}" in message
    ok, message = await unload_command(core.lifecycle, "all")
    assert not ok and inst.key in message
    monkeypatch.undo()
    ok, message = await unload_command(core.lifecycle, inst.key)
    assert ok and message.startswith(f"Unloaded {inst.key}")
