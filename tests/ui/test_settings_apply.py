"""Each setting, changed in Settings… of a running app, does what the dialog then says.

One test per field of the settings model (a new setting is in the list by itself, and fails
until ``CASES`` says how to see it in effect). Each case types a new value into the real
dialog of a real TrayApp (a real core, the API, a real llama-server), saves, and checks
the dialog's line for that setting against what the app then does:

- "In effect now" / "From the next load of a model": the app now uses the new value (the
  next load of a model is made and looked at);
- "After restart": the running app still does not, and an app started again from the
  saved settings does.

Before the change each case's check must say "not in effect", so no check passes by itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import logging.handlers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from app.config import Applies, Settings, applies
from app.core.api.upstream import read_timeout
from app.core.logs.app_logging import setup_logging
from app.core.settings.settings_file import update_settings_file
from app.paths import AppPaths
from app.settings_load import load_settings
from tests.conftest import free_port
from tests.lifecycle.test_settle import snap
from tests.support.app import AS_APP, make_core, supervisor
from tests.support.tiny_model import write_tiny_model
from tests.ui.test_settings import enter

# What the dialog says of a changed setting, by how it applies (the user's words).
SAYS = {
    Applies.NOW: "In effect now:",
    Applies.NEXT_LOAD: "From the next load of a model:",
    Applies.RESTART: "After restart",
}


class World:
    """The app under test, started from the settings file, and what its checks need."""

    def __init__(self, arun, caplog, tmp_path: Path, files: dict[str, Path]) -> None:
        self.arun = arun
        self.caplog = caplog
        self.tmp = tmp_path
        self.files = files
        self.paths = AppPaths.resolve().ensure()
        self.app = None
        self.gpu: StickyGpu | None = None
        self.base: dict = {}  # the settings every case starts from

    def start(self, values: dict, gpu: bool = False):
        update_settings_file(self.paths.settings_file, {k: str(v) for k, v in values.items()})
        return self._start(gpu)

    def restart(self):
        """Quit and start the app again from the saved settings, as the user would."""
        self.close()
        return self._start(self.gpu is not None)

    def _start(self, gpu: bool):
        from app.ui.tray_app import TrayApp

        self.gpu = StickyGpu() if gpu else None
        core = make_core(load_settings(self.paths), **AS_APP, paths=self.paths, gpu=self.gpu)
        if self.gpu is not None:
            self.gpu.core = core
        self.app = TrayApp(core, self.paths)
        self.arun(self.app.start(show_tray=False, load_at_start=False))
        self.arun(core.load_at_start())  # what start() spawns, awaited here
        return self.app

    def close(self) -> None:
        if self.app is not None:
            self.arun(self.app.shutdown())
            self.app = None

    # ── What the checks use ───────────────────────────────────────────────────
    @property
    def core(self):
        return self.app.core

    def next_load(self, role: str = "llm") -> dict:
        """Unload everything and load FamilyLog's ``role`` again; what the manager was asked
        to start (path, port and the launch arguments), even when the start failed."""
        manager = self.core.manager
        real = manager.load_model
        asked: list[dict] = []

        async def spy(model_path, **kw):
            asked.append({"model_path": model_path, **kw})
            return await real(model_path, **kw)

        manager.load_model = spy
        try:
            self.arun(self.core.lifecycle.unload_all())
            try:
                self.arun(self.core.lifecycle.ensure(self.core.catalogue.role(role)))
            except Exception as e:
                asked.append({"error": str(e)})
        finally:
            del manager.load_model
        found = [a for a in asked if "model_path" in a]
        assert found, asked
        return found[-1]

    def http(self, method: str, path: str, *, port: int | None = None, **kw) -> httpx.Response:
        port = port or self.core.api.port

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(trust_env=False, timeout=30) as c:
                return await c.request(method, f"http://127.0.0.1:{port}{path}", **kw)

        return self.arun(go())

    def raw(self, head: str, body: bytes = b"") -> bytes:
        """Send a request by hand (headers, then ``body``, never the rest); the answer's body."""

        async def go() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.core.api.port)
            try:
                writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
                await writer.drain()
                headers = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
                length = int(headers.split("content-length:")[1].split("\r\n")[0])
                return await reader.readexactly(length)
            finally:
                writer.close()

        return self.arun(go())

    def connects(self, host: str, port: int) -> bool:
        async def go() -> bool:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                return False
            writer.close()
            return True

        return self.arun(go())


class StickyGpu:
    """A GPU whose driver keeps listing every server that ever ran (VRAM never settles)."""

    def __init__(self) -> None:
        self.core = None
        self.seen: set[int] = set()

    def free_bytes(self) -> int:
        return 100 * 1024**3

    def close(self) -> None:
        pass

    def probe(self, pids=()):
        if self.core is not None:
            self.seen |= {st.pid for st in self.core.manager.statuses().values() if st.pid}
        return snap(*self.seen)


def typed(name: str, text: str) -> object:
    """``text`` as the value the settings model makes of it."""
    return getattr(Settings(_env_file=None, **{name: text}), name)  # type: ignore[call-arg]


# ── How to see each setting in effect ──────────────────────────────────────────


@dataclass(frozen=True)
class Case:
    value: Callable[[World], str]  # the new value, as typed into Settings…
    in_effect: Callable[[World, str], bool]  # does the app use it?
    base: dict = field(default_factory=dict)  # settings the case starts from
    gpu: bool = False  # a GPU (whose memory never settles) for the placement


def const(text: str) -> Callable[[World], str]:
    return lambda w: text


def reads(where: Callable[[World], object], name: str) -> Callable[[World, str], bool]:
    """The service that uses ``name`` sees the new value when it next reads its settings."""
    return lambda w, v: getattr(where(w), name) == typed(name, v)


def runner(w: World):
    return w.core.runs.runner.settings


def run_env(w: World) -> dict[str, str]:
    return w.core.runs.runner.placement.child_env()


def jit_refused(w: World, v: str) -> bool:
    w.arun(w.core.lifecycle.unload_all())
    key = w.core.catalogue.role("llm").key
    body = {"model": key, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    r = w.http("POST", "/v1/chat/completions", json=body)
    return r.status_code != 200 and "JIT_LOAD" in r.text


def loaded_at_start(role: str) -> Callable[[World, str], bool]:
    return lambda w, v: w.core.lifecycle.ready(w.core.catalogue.role(role)) is not None


def at_most_loaded(w: World, v: str) -> bool:
    w.arun(w.core.lifecycle.unload_all())
    for role in ("llm", "vision"):
        w.arun(w.core.lifecycle.ensure(w.core.catalogue.role(role)))
    return len(w.core.lifecycle.loaded()) == int(v)


def evict_wait(w: World, v: str) -> bool:
    """A load that must unload a held model waits EVICT_WAIT_SECONDS, then says so."""
    life = w.core.lifecycle
    w.arun(life.unload_all())
    life.hold(w.arun(life.ensure(w.core.catalogue.role("llm"))), "test")
    try:
        w.arun(life.ensure(w.core.catalogue.role("vision")))
    except Exception as e:
        return f"waited {typed('EVICT_WAIT_SECONDS', v):g} s" in str(e)
    finally:
        life.release("test")
    raise AssertionError("the load did not wait for the held model")


def vram_settle(w: World, v: str) -> bool:
    """A switch waits VRAM_SETTLE_SECONDS for the old server's GPU memory, then logs it."""
    w.caplog.clear()
    w.arun(w.core.lifecycle.unload_all())
    for role in ("llm", "vision"):
        w.arun(w.core.lifecycle.ensure(w.core.catalogue.role(role)))
    waited = [r.getMessage() for r in w.caplog.records if "not released after" in r.getMessage()]
    assert waited, "the switch did not wait for the GPU memory"
    return waited[-1].endswith(f"after {typed('VRAM_SETTLE_SECONDS', v):g} s")


def keeps_slots(w: World, v: str) -> bool:
    """The next load's llama-server is given the folder to save its slots in."""
    w.next_load()
    inst = w.core.lifecycle.instance(w.core.catalogue.role("llm"))
    return "--slot-save-path" in psutil.Process(inst.pid).cmdline()


def answers_without_key(w: World, v: str) -> bool:
    port = w.next_load()["port"]
    return w.http("GET", "/slots", port=port).status_code == 200


def log_limits(index: int) -> Callable[[World, str], bool]:
    """Server logs rotate at the new limit from the next start; the app's own log at once."""

    def check(w: World, v: str) -> bool:
        logging.getLogger("app.test").info("a record: the app log asks for its limits")
        root = logging.getLogger().handlers
        handler = next(h for h in root if isinstance(h, logging.handlers.RotatingFileHandler))
        own = (handler.maxBytes, handler.backupCount)[index]
        return w.core.manager.log_limits()[index] == own == int(v)

    return check


def log_view_lines(w: World, v: str) -> bool:
    window = w.app.logs.open()
    return all(p.view.max_lines == int(v) for p in window.panes.values())


def rescanned(w: World, v: str) -> bool:
    w.arun(w.core.catalogue.rescan())
    return "zeta-extra" in {e.key for e in w.core.catalogue.entries()}


def body_limit(w: World, v: str) -> bool:
    head = "POST /api/v1/models/load HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 999999999\n"
    answer = w.raw(head)
    return f"API_MAX_BODY_MB={typed('API_MAX_BODY_MB', v):g} MiB".encode() in answer


def body_timeout(w: World, v: str) -> bool:
    head = "POST /api/v1/models/load HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 100\n"
    answer = w.raw(head, b'{"model"')
    seconds = typed("API_BODY_TIMEOUT_SECONDS", v)
    return f"API_BODY_TIMEOUT_SECONDS={seconds:g} s".encode() in answer


def stalled_answers(w: World, count: int) -> str:
    """``count`` requests whose bodies stop after one byte; what those answered within a few
    seconds said (a request beyond the places for unfinished bodies is answered after 2 s)."""

    async def go() -> str:
        port = w.core.api.port
        conns = []
        try:
            for _ in range(count):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    b"POST /api/v1/models/load HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Length: 100\r\n\r\n{"
                )
                conns.append((reader, writer))

            async def answer(reader) -> bytes:
                try:
                    async with asyncio.timeout(6):
                        return await reader.read(65536)
                except TimeoutError:
                    return b""

            return b" ".join(await asyncio.gather(*(answer(r) for r, _ in conns))).decode()
        finally:
            for _, writer in conns:
                writer.close()

    return w.arun(go())


def connection_cap(w: World, v: str) -> bool:
    """Bodies still arriving have as many places as requests being answered: one request
    more than that is refused with the cap in force named."""
    n = typed("API_MAX_CONNECTIONS", v)
    return f"API_MAX_CONNECTIONS={n} allows" in stalled_answers(w, n + 1)


def pending_per_client(w: World, v: str) -> bool:
    n = typed("API_MAX_PENDING_PER_CLIENT", v)
    return f"API_MAX_PENDING_PER_CLIENT={n})" in stalled_answers(w, n + 1)


def answered_within(w: World, data: bytes, seconds: float = 3.0) -> bytes | None:
    """What the API sends for ``data`` within ``seconds`` before it closes the connection
    (b"" when it closed without a word); None while it still waits."""

    async def go() -> bytes | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", w.core.api.port)
        try:
            writer.write(data)
            got = b""
            async with asyncio.timeout(seconds):
                while chunk := await reader.read(65536):
                    got += chunk
            return got
        except TimeoutError:
            return None
        finally:
            writer.close()

    return w.arun(go())


def head_deadline(w: World, v: str) -> bool:
    said = answered_within(w, b"GET /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return said is not None and f"API_HEADER_TIMEOUT_SECONDS={float(v):g} s".encode() in said


def body_stall(w: World, v: str) -> bool:
    head = b"POST /api/v1/models/load HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9\r\n\r\n"
    said = answered_within(w, head)
    return said is not None and f"API_BODY_STALL_SECONDS={float(v):g} s".encode() in said


def keepalive(w: World, v: str) -> bool:
    """A connection idle after its answer is closed (the answer is all that came)."""
    said = answered_within(w, b"GET /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return said is not None and said.startswith(b"HTTP/1.1 200") and said.count(b"HTTP/1.1") == 1


def compressed_refused(w: World, v: str) -> bool:
    import gzip

    r = w.http(
        "POST",
        "/api/v1/models/load",
        content=gzip.compress(b'{"model": "nope"}'),
        headers={"Content-Encoding": "gzip"},
    )
    return r.status_code == 415 and "API_ACCEPT_COMPRESSED=false" in r.text


def json_width(name: str, make: Callable[[int], object]) -> Callable[[World, str], bool]:
    """A body one wider than the new limit is refused, naming the limit."""

    def check(w: World, v: str) -> bool:
        n = typed(name, v)
        r = w.http("POST", "/api/v1/models/load", json={"model": "nope", "x": make(n + 1)})
        return r.status_code == 400 and f"at most {n:,} are accepted ({name})" in r.text

    return check


def image_url_passes(w: World, v: str) -> bool:
    """An image URL gets past the image check (to the unknown model's 404), not its 400."""
    part = {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/photo.png"}}
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": [part]}]}
    return w.http("POST", "/v1/chat/completions", json=body).status_code == 404


def chat_not_kept(w: World, v: str) -> bool:
    """With API_CHAT_STORE_MB=0 a chat is answered but not kept: no ``response_id``."""
    key = w.core.catalogue.role("llm").key
    r = w.http("POST", "/api/v1/chat", json={"model": key, "input": "Hi", "max_output_tokens": 1})
    assert r.status_code == 200, r.text
    return "response_id" not in r.json()


def sharing(check: Callable[[World, str, object], bool]) -> Callable[[World, str], bool]:
    """The shared worker as the settings in force say (``follow`` waits for a change being
    applied), then ``check(world, value, status)``."""

    def in_effect(w: World, v: str) -> bool:
        status = w.arun(w.core.shared_worker.follow())
        return check(w, v, status)

    return in_effect


def shares_on(host: str) -> Callable[[World, str, object], bool]:
    def check(w: World, v: str, st) -> bool:
        port = int(v) if v.isdigit() else w.core.settings.RPC_WORKER_PORT
        return st.pid is not None and st.address == f"{host}:{port}" and w.connects(host, port)

    return check


def worker_runs_with(flag: str) -> Callable[[World, str, object], bool]:
    return lambda w, v, st: st.pid is not None and flag in w.core.shared_worker.running_command


SHARED = {"RPC_WORKER_ENABLED": "true"}


def third_model(w: World) -> str:
    return str(w.files["third"])


CASES: dict[str, Case] = {
    # ── Models and server ──
    "LLAMA_SERVER_PATH": Case(
        lambda w: str(w.files["server"]), lambda w, v: w.core.manager.server_path == v
    ),
    "VISION_MODEL_GGUF": Case(third_model, lambda w, v: w.next_load("vision")["model_path"] == v),
    # not a projector: the load fails, but with the new file on its command line
    "VISION_MMPROJ": Case(third_model, lambda w, v: w.next_load("vision")["mmproj"] == v),
    "LLM_MODEL_GGUF": Case(third_model, lambda w, v: w.next_load()["model_path"] == v),
    "LLAMA_GPU_LAYERS": Case(const("0"), lambda w, v: w.next_load()["n_gpu_layers"] == 0),
    "LLAMA_CTX_SIZE": Case(const("1024"), lambda w, v: w.next_load()["ctx_size"] == 1024),
    "LLAMA_VISION_PORT": Case(
        lambda w: str(free_port()), lambda w, v: w.next_load("vision")["port"] == int(v)
    ),
    "LLAMA_LLM_PORT": Case(
        lambda w: str(free_port()), lambda w, v: w.next_load()["port"] == int(v)
    ),
    "LLAMA_PORT": Case(
        lambda w: str(free_port()),
        lambda w, v: w.next_load()["port"] == int(v),
        base={"RUN_MODE": "switch"},
    ),
    "LLAMA_EXTRA_ARGS": Case(
        const("--threads 2"), lambda w, v: "--threads" in w.next_load()["extra_args"]
    ),
    "LLAMA_READY_TIMEOUT": Case(const("45"), lambda w, v: w.next_load()["timeout"] == 45),
    "LLM_MODEL_ID": Case(const("my/llm-id"), lambda w, v: w.core.catalogue.role("llm").key == v),
    "VISION_MODEL_ID": Case(
        const("my/vision-id"), lambda w, v: w.core.catalogue.role("vision").key == v
    ),
    "VISION_LOAD_AT_START": Case(const("true"), loaded_at_start("vision")),
    "LLM_LOAD_AT_START": Case(const("true"), loaded_at_start("llm")),
    "RESTART_ON_CRASH": Case(
        const("false"), lambda w, v: supervisor(w.core).policy.enabled is False
    ),
    "HUNG_PROBE_SECONDS": Case(
        const("61.5"), lambda w, v: supervisor(w.core).policy.probe_interval == 61.5
    ),
    "STOP_GRACE_SECONDS": Case(
        const("3.5"),
        lambda w, v: w.core.manager.stop_grace() == 3.5 and w.core.runs.runner.grace == 3.5,
    ),
    # ── Placement ──
    "JIT_LOAD": Case(const("false"), jit_refused),
    "RUN_MODE": Case(
        const("switch"), lambda w, v: w.next_load()["port"] == w.core.settings.LLAMA_PORT
    ),
    "IDLE_UNLOAD_MINUTES": Case(const("1.5"), lambda w, v: w.core.idle.idle_seconds == 90),
    "MAX_LOADED_MODELS": Case(const("1"), at_most_loaded),
    "EVICT_WAIT_SECONDS": Case(
        const("0.4"), evict_wait, base={"RUN_MODE": "switch", "EVICT_WAIT_SECONDS": 0.1}
    ),
    "PREFETCH": Case(
        const("false"),
        lambda w, v: w.core.prefetch.next_for(w.core.catalogue.role("llm")) is None,
        base={"RUN_MODE": "switch"},
    ),
    "VRAM_SETTLE_SECONDS": Case(
        const("0.3"), vram_settle, base={"RUN_MODE": "switch", "VRAM_SETTLE_SECONDS": 0.1}, gpu=True
    ),
    "MODEL_DIRS": Case(lambda w: str(w.files["extra"].parent), rescanned),
    "HF_TOKEN": Case(const("hf_tray_token"), lambda w, v: w.core.downloads.hub.token() == v),
    "SLOT_CACHE": Case(const("false"), lambda w, v: not keeps_slots(w, v)),
    "SLOT_CACHE_MB": Case(
        const("3"), lambda w, v: w.core.slots.store.budget_bytes() == 3 * 1024 * 1024
    ),
    # ── API ──
    "API_HOST": Case(const("127.0.0.2"), lambda w, v: w.connects(v, w.core.settings.API_PORT)),
    "API_PORT": Case(lambda w: str(free_port()), lambda w, v: w.core.api.port == int(v)),
    "API_ALLOW_REMOTE": Case(
        const("true"),
        lambda w, v: w.http("GET", "/api/v1/models", headers={"Host": "box.lan"}).is_success,
    ),
    "API_KEY": Case(
        const("s3cret key"), lambda w, v: w.http("GET", "/api/v1/models").status_code == 401
    ),
    "API_ENABLED": Case(const("false"), lambda w, v: w.core.api is None or not w.core.api.running),
    "API_ALLOWED_HOSTS": Case(
        const("tray.local,box"),
        lambda w, v: (
            w.http("GET", "/api/v1/models", headers={"Host": "evil.example"}).status_code == 403
        ),
        base={"API_ALLOW_REMOTE": "true"},
    ),
    "API_CORS_ORIGINS": Case(
        const("http://localhost:3000"),
        lambda w, v: w.http("GET", "/api/v1/models", headers={"Origin": v}).is_success,
    ),
    "API_MAX_BODY_MB": Case(const("2.5"), body_limit, base={"API_MAX_BODY_MB": 1}),
    "API_BODY_TIMEOUT_SECONDS": Case(
        const("0.6"), body_timeout, base={"API_BODY_TIMEOUT_SECONDS": 0.2}
    ),
    "API_MAX_CONNECTIONS": Case(const("2"), connection_cap, base={"API_MAX_CONNECTIONS": 1}),
    "API_MAX_PENDING_PER_CLIENT": Case(
        const("2"), pending_per_client, base={"API_MAX_PENDING_PER_CLIENT": 1}
    ),
    "API_MAX_OPEN_CONNECTIONS": Case(
        const("100"), lambda w, v: w.core.api.connections.capacity == int(v)
    ),
    "API_HEADER_TIMEOUT_SECONDS": Case(
        const("0.5"), head_deadline, base={"API_HEADER_TIMEOUT_SECONDS": 30}
    ),
    "API_BODY_STALL_SECONDS": Case(const("0.5"), body_stall, base={"API_BODY_STALL_SECONDS": 30}),
    "API_KEEPALIVE_SECONDS": Case(const("0.5"), keepalive, base={"API_KEEPALIVE_SECONDS": 30}),
    "API_ACCEPT_COMPRESSED": Case(const("false"), compressed_refused),
    "API_JSON_MAX_KEYS": Case(
        const("50"),
        json_width("API_JSON_MAX_KEYS", lambda n: {str(i): i for i in range(n)}),
        base={"API_JSON_MAX_KEYS": 100},
    ),
    "API_JSON_MAX_ITEMS": Case(
        const("50"),
        json_width("API_JSON_MAX_ITEMS", lambda n: list(range(n))),
        base={"API_JSON_MAX_ITEMS": 100},
    ),
    "LLAMA_PORTS_OPEN": Case(const("true"), answers_without_key),
    "API_ALLOW_IMAGE_URLS": Case(const("true"), image_url_passes),
    "API_CHAT_STORE_MB": Case(const("0"), chat_not_kept),
    "UPSTREAM_READ_TIMEOUT_SECONDS": Case(
        const("42.5"), lambda w, v: read_timeout(w.core.api._ctx).sock_read == 42.5
    ),
    # ── Other machines ──
    "RPC_WORKER_ENABLED": Case(const("true"), sharing(shares_on("127.0.0.1"))),
    "RPC_WORKER_HOST": Case(const("127.0.0.2"), sharing(shares_on("127.0.0.2")), base=SHARED),
    "RPC_WORKER_PORT": Case(
        lambda w: str(free_port()), sharing(shares_on("127.0.0.1")), base=SHARED
    ),
    # an address no machine has: allowed, the worker is tried there (and cannot bind); never
    # a real network address in a test
    "RPC_WORKER_ALLOW_REMOTE": Case(
        const("true"),
        sharing(lambda w, v, st: st.error != "" and "RPC_WORKER_ALLOW_REMOTE" not in st.error),
        base={**SHARED, "RPC_WORKER_HOST": "192.0.2.1"},
    ),
    "RPC_WORKER_DEVICES": Case(const("CPU"), sharing(worker_runs_with("CPU")), base=SHARED),
    "RPC_WORKER_CACHE": Case(const("true"), sharing(worker_runs_with("--cache")), base=SHARED),
    "RPC_WORKERS": Case(
        lambda w: f"127.0.0.1:{free_port()}",
        lambda w, v: [st.address for st in w.core.workers.shown()] == [v],
    ),
    "PEERS": Case(
        const("laptop http://127.0.0.1:9"),
        lambda w, v: [p.name for p in w.core.peers.shown()] == ["laptop"],
    ),
    # ── FamilyLog runs ──
    "CONNECTION_TYPE": Case(const("online"), lambda w, v: run_env(w)["CONNECTION_TYPE"] == v),
    "OPENROUTER_URL": Case(
        const("https://example.invalid/api/v1"), lambda w, v: run_env(w)["OPENROUTER_URL"] == v
    ),
    "FAMILYLOG_DIR": Case(lambda w: str(w.tmp / "familylog"), reads(runner, "FAMILYLOG_DIR")),
    "FAMILYLOG_COMMAND": Case(
        const("uv run python run.py --now"), reads(runner, "FAMILYLOG_COMMAND")
    ),
    "RUN_TIMEOUT_MINUTES": Case(const("7.5"), reads(runner, "RUN_TIMEOUT_MINUTES")),
    "RUN_SCHEDULE": Case(
        const("03:00,14:30"),
        lambda w, v: (
            w.core.runs.scheduler.times == [(3, 0), (14, 30)] and w.core.runs.next_run() is not None
        ),
    ),
    "RUN_CATCH_UP_HOURS": Case(
        const("13.5"), lambda w, v: w.core.runs.scheduler.catch_up == dt.timedelta(hours=13.5)
    ),
    "RUN_PRELOAD": Case(
        const("both"), reads(lambda w: w.core.runs.runner.placement.settings, "RUN_PRELOAD")
    ),
    "AFTER_RUN": Case(
        const("restore"), reads(lambda w: w.core.runs.runner.placement.settings, "AFTER_RUN")
    ),
    "FAMILYLOG_MANAGES_MODELS": Case(
        const("true"),
        reads(lambda w: w.core.runs.runner.placement.settings, "FAMILYLOG_MANAGES_MODELS"),
    ),
    # ── Logs ──
    "LOG_VIEW_MAX_LINES": Case(const("150"), log_view_lines),
    "LOG_MAX_BYTES": Case(const("5000"), log_limits(0)),
    "LOG_BACKUPS": Case(const("5"), log_limits(1)),
}


@pytest.fixture
def world(arun, caplog, tmp_path, llama_server_bin, tiny_model, tiny_model_b):
    """The app's log installed as the app installs it, three tiny models, and a second
    name for the llama-server binary; every app started is stopped at the end."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    paths = AppPaths.resolve().ensure()
    setup_logging(paths.app_log_file, console=False)
    caplog.set_level(logging.INFO)
    server = tmp_path / "bin" / "llama-server"
    server.parent.mkdir()
    os.symlink(llama_server_bin, server)
    for folder in ("extra", "third"):
        (tmp_path / folder).mkdir()
    extra = write_tiny_model(tmp_path / "extra" / "zeta-extra.gguf", seed=7, name="zeta")
    third = write_tiny_model(tmp_path / "third" / "third-Q8_0.gguf", seed=5, name="third")
    w = World(arun, caplog, tmp_path, {"server": server, "extra": extra, "third": third})
    w.base = {
        "LLAMA_SERVER_PATH": llama_server_bin,
        "LLM_MODEL_GGUF": tiny_model,
        "VISION_MODEL_GGUF": tiny_model_b,
        "LLAMA_LLM_PORT": free_port(),
        "LLAMA_VISION_PORT": free_port(),
        "LLAMA_PORT": free_port(),
        "LLAMA_CTX_SIZE": 512,
        "RUN_MODE": "parallel",
        "API_PORT": free_port(),
        "RPC_WORKER_PORT": free_port(),
    }
    try:
        yield w
    finally:
        w.close()
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_a_changed_setting_does_what_the_dialog_says(name: str, world: World, qtbot) -> None:
    case = CASES.get(name)
    assert case is not None, f"say in CASES ({__file__}) how to see {name} in effect"
    app = world.start({**world.base, **case.base}, gpu=case.gpu)
    value = case.value(world)
    assert not case.in_effect(world, value), f"{name}={value} is in effect before it is set"

    app.show_settings()
    dialog = app.settings_dialog
    dialog.tabs.setCurrentIndex(dialog.tab_of(name))
    enter(qtbot, dialog.editors[name], value)
    assert dialog.changes() == {name: value}
    assert dialog.apply(), dialog.message.text()
    world.arun(dialog.applying)
    said = dialog.message.text()
    how = applies(name)
    title = Settings.model_fields[name].title
    assert f"{SAYS[how]}" in said and f"{title} ({name})" in said, said
    assert not any(SAYS[other] in said for other in SAYS if other is not how), said

    if how is Applies.RESTART:
        assert not case.in_effect(world, value), f"{name} applied at once; the dialog said {said!r}"
        world.restart()
        assert case.in_effect(world, value), f"{name}={value} not in effect after a restart"
    else:
        assert case.in_effect(world, value), (
            f"{name}={value} not in effect; the dialog said {said!r}"
        )


def test_every_case_is_a_setting() -> None:
    assert set(CASES) <= set(Settings.model_fields), set(CASES) - set(Settings.model_fields)
