"""One instance per app home: a second launch forwards its verb and exits 0."""

from __future__ import annotations

import asyncio
import os
import sys

from app.paths import AppPaths
from app.ui.single_instance import InstanceServer, forward, server_name


def test_nobody_listening_gives_none(app_home) -> None:
    assert forward("show", AppPaths.resolve(), timeout=0.5) is None


def test_names_differ_per_app_home(tmp_path) -> None:
    def home(name: str) -> AppPaths:
        return AppPaths.resolve({"FAMILYLOG_TRAY_HOME": str(tmp_path / name)})

    assert server_name(home("a")) != server_name(home("b"))
    assert server_name(home("a")) == server_name(home("a"))


async def ask(verb: str) -> str:
    """forward() from another process (it blocks, as a second launch does)."""
    code = f"from app.paths import AppPaths; from app.ui.single_instance import forward; print(forward({verb!r}, AppPaths.resolve(), 10.0))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, env=os.environ.copy()
    )
    out, _ = await proc.communicate()
    return out.decode().strip()


async def launch(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=os.environ.copy(),
    )
    out, _ = await proc.communicate()
    return proc.returncode, out.decode()


def test_verbs_are_dispatched_and_unknown_ones_refused(arun) -> None:
    paths = AppPaths.resolve().ensure()
    calls = []
    server = InstanceServer(paths, {"show": lambda: calls.append("show") or "ok: shown"})
    assert server.listen()
    try:
        assert arun(ask("show")) == "ok: shown"
        assert calls == ["show"]
        reply = arun(ask("dance"))
        assert reply.startswith("error: unknown request 'dance'") and "show" in reply
        server.handlers["logs"] = lambda: "ok: logs"  # pluggable by later features
        assert arun(ask("logs")) == "ok: logs"
    finally:
        server.close()


def test_a_second_launch_forwards_and_exits_0(make_app, arun, wait) -> None:
    app = make_app()
    assert app.models_window is None

    code, out = arun(launch("--show"))
    assert code == 0, out
    assert "ok: the models window is open" in out
    assert app.models_window is not None and app.models_window.isVisible()

    code, out = arun(launch())
    assert code == 0 and "already running" in out, out

    code, out = arun(launch("--logs"))  # the command line, forwarded
    assert code == 0 and "ok: the log window is open" in out, out
    assert app.logs.window is not None and app.logs.window.isVisible()
    # FAMILYLOG_DIR is not set: the run starts, fails to start its command, is recorded
    code, out = arun(launch("--process-now"))
    assert code == 0 and "FamilyLog run started" in out, out
    wait(lambda: not app.core.runs.status().busy and bool(app.core.runs.recent_runs(1)))
    assert str(app.core.runs.recent_runs(1)[0].outcome) == "not started"


async def ask_with_args(verb: str, args: dict) -> str:
    """request() from another process with arguments; prints ``ok|message``."""
    code = (
        "from app.paths import AppPaths; from app.ui.single_instance import request; "
        f"r = request({verb!r}, AppPaths.resolve(), {args!r}, reply_timeout=30); "
        "print(r.ok, r.message, sep='|')"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, env=os.environ.copy()
    )
    out, _ = await proc.communicate()
    return out.decode().strip()


def test_arguments_go_over_and_a_slow_answer_comes_back(arun, wait) -> None:
    paths = AppPaths.resolve().ensure()
    release = asyncio.Event()
    asked: list[tuple[str, int | None]] = []

    async def load(key: str, ctx: int | None = None) -> str:
        asked.append((key, ctx))
        await release.wait()  # a load that takes a while: the client keeps waiting
        return f"ok: loaded {key} with {ctx}"

    server = InstanceServer(paths, {"load": load, "show": lambda: "ok: shown"})
    assert server.listen()
    try:
        reply = asyncio.ensure_future(ask_with_args("load", {"key": "a b/c", "ctx": 4096}))
        wait(lambda: asked == [("a b/c", 4096)])
        assert not reply.done()
        release.set()
        assert arun(reply) == "True|loaded a b/c with 4096"
        out = arun(ask_with_args("load", {"model": "x"}))
        assert out.startswith("False|load: bad arguments ['model']"), out
        assert arun(ask_with_args("show", {"unexpected": 1})).startswith("False|show: bad")
    finally:
        server.close()


def test_a_second_server_never_takes_a_live_name() -> None:
    paths = AppPaths.resolve().ensure()
    first = InstanceServer(paths, {})
    assert first.listen()
    second = InstanceServer(paths, {})
    try:
        assert not second.listen() and second.other_instance
        assert first.listening and first.listen()  # listening already: still the lock
    finally:
        second.close()
        first.close()
