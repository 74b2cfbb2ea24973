"""Helpers for app-level tests: a real AppCore on a temp home, and what the user was told."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from app.config import Settings
from app.core.app_core import AppCore
from app.core.bootstrap import build_core
from app.core.lifecycle.supervisor import RestartPolicy, Supervisor
from app.core.notices import Notice
from app.core.servers.states import ServerStatus
from app.paths import AppPaths
from tests.conftest import free_port

CTX = 512
# Restarts and probes in tests: no waiting worth the name, the same logic.
FAST = RestartPolicy(first_delay=0.01, max_delay=0.05, probe_interval=0)


def settings_for(llama_server_bin: str, **overrides) -> Settings:
    values: dict = {
        "LLAMA_SERVER_PATH": llama_server_bin,
        "LLAMA_LLM_PORT": free_port(),
        "LLAMA_VISION_PORT": free_port(),
        "LLAMA_PORT": free_port(),
        "LLAMA_CTX_SIZE": CTX,
        "HUNG_PROBE_SECONDS": 0,
        "LLAMA_READY_TIMEOUT": 60,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# Every service the settings ask for, as the tray and --headless build the core:
# ``make_core(settings, **AS_APP)``.
AS_APP: dict = {"policy": None, "supervise": True, "api": None, "runs": True}


def make_core(
    settings: Settings,
    policy: RestartPolicy | None = FAST,
    *,
    api: bool | None = False,
    runs: bool = False,
    supervise: bool | None = None,
    paths: AppPaths | None = None,
    **kw,
) -> AppCore:
    """The one way tests build a core: the app's own factory (``bootstrap.build_core``).

    ``policy``: the supervisor's restart policy (default fast; ``None``: no supervisor,
    unless ``supervise=True``, which then takes the policy from the settings); ``api``:
    serve the API (``None``: follow ``API_ENABLED``); ``runs``: attach FamilyLog runs;
    ``paths``: default the test's app home; ``kw``: ``build_core``'s other options
    (``schedule``, ``run_options``, ``gpu``, ``platform``). No API and no runs unless asked.
    """
    return build_core(
        settings,
        paths or AppPaths.resolve().ensure(),
        policy=policy,
        supervise=policy is not None if supervise is None else supervise,
        api=api,
        runs=runs,
        **kw,
    )


def supervisor(core: AppCore) -> Supervisor:
    return next(s for s in core.services if isinstance(s, Supervisor))


def titles(core: AppCore) -> list[str]:
    return [n.title for n in core.notices.history]


def notice(core: AppCore, title_part: str) -> Notice:
    found = [n for n in core.notices.history if title_part in n.title]
    assert found, f"no notice titled like {title_part!r}; got {titles(core)}"
    return found[-1]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def llama_servers(binary: str) -> list[psutil.Process]:
    """Every live process on the machine running ``binary`` (children or orphans)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = p.info["cmdline"]
            if cmd and cmd[0] == binary and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def server_cmd(binary: str, model: Path, port: int) -> list[str]:
    return [
        binary,
        "--model",
        str(model),
        "--port",
        str(port),
        "--ctx-size",
        str(CTX),
        "--host",
        "127.0.0.1",
    ]


def start_foreign_server(binary: str, model: Path, port: int, log: Path) -> subprocess.Popen:
    """A llama-server the app did not start (by hand, or by another tool)."""
    return subprocess.Popen(
        server_cmd(binary, model, port),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_app(
    *args: str, env: dict[str, str], code: str | None = None, preexec_fn=None
) -> subprocess.Popen:
    """``familylog-tray`` as its own process (``python -m app.main``), or a script;
    ``preexec_fn`` runs in the child before it starts (e.g. to set a resource limit)."""
    argv = (
        [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "app.main", *args]
    )
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        preexec_fn=preexec_fn,
    )


async def load_role(core: AppCore, role: str, **kw) -> ServerStatus:
    """Load FamilyLog's ``role`` ("vision"/"llm") through the lifecycle, as the tray does;
    the server's status."""
    inst = await core.lifecycle.ensure(core.catalogue.role(role), **kw)
    return inst.status


def headless_env(llama_server_bin: str, model: Path, **extra: object) -> dict[str, str]:
    """The environment of a ``--headless`` app serving ``model`` as its LLM on free ports."""
    env = {
        "LLAMA_SERVER_PATH": llama_server_bin,
        "LLM_MODEL_GGUF": str(model),
        "LLAMA_LLM_PORT": str(free_port()),
        "LLAMA_CTX_SIZE": "512",
        "API_PORT": str(free_port()),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_headless(env: dict[str, str], preexec_fn=None) -> subprocess.Popen:
    """``familylog-tray --headless`` as its own process, once it says it runs."""
    p = run_app("--headless", env=env, preexec_fn=preexec_fn)
    assert "running headless" in p.stdout.readline(), p.stderr.read()
    return p


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``familylog-tray ARGS`` in a child process with ``env`` over this one's; its result."""
    return subprocess.run(
        [sys.executable, "-m", "app.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
