"""The API is closed to web pages: Host (DNS rebinding) and Origin checks, CORS for the
origins the user listed, and the body / connection limits, against the real server."""

from __future__ import annotations

import asyncio
import json
import signal
import socket

import httpx
import psutil
import pytest

from app.config import Settings
from app.core.api.guard import Guard, host_name, is_loopback_name, normal_origin
from tests.api.conftest import chat, client, servers
from tests.support.app import headless_env, start_headless

LLM = "google/gemma-3-12b"
EVIL = "http://evil.example"
PAGE = "http://localhost:5173"
SIMPLE = {"Content-Type": "text/plain", "Origin": EVIL}  # a browser's "simple" request


def load_body(model: str = LLM) -> str:
    return json.dumps({"model": model})


async def slots(core, port: int) -> list:
    """What llama-server's slots say (its last task id changes with every completion)."""
    from app.core.servers.keys import auth_headers, server_url

    st = core.manager.status(port)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as c:
        r = await c.get(server_url(port, "/slots", st), headers=auth_headers(st))
    assert r.status_code == 200, r.text
    return r.json()


# ── The three probes from the issue ───────────────────────────────────────────
async def test_a_web_page_cannot_load_a_model(start_api) -> None:
    core = await start_api()
    before = core.manager.statuses()
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", content=load_body(), headers=SIMPLE)
        assert r.status_code == 403
        err = r.json()["error"]
        assert err["code"] == "origin_not_allowed" and "API_CORS_ORIGINS" in err["message"]
        assert "access-control-allow-origin" not in r.headers
        assert servers() == [] and core.manager.statuses() == before

        # The same request without the page's Origin (curl, FamilyLog) loads the model.
        r = await c.post(
            "/api/v1/models/load", content=load_body(), headers={"Content-Type": "text/plain"}
        )
        assert r.status_code == 200, r.text
        assert len(servers()) == 1


async def test_a_web_page_cannot_run_a_completion_or_unload(start_api) -> None:
    core = await start_api()
    port = core.settings.LLAMA_LLM_PORT
    async with client(core) as c:
        assert (await c.post("/v1/chat/completions", json=chat(LLM))).status_code == 200
        pid = servers()[0].pid
        before, status = await slots(core, port), core.manager.statuses()
        body = json.dumps(chat(LLM))
        r = await c.post("/v1/chat/completions", content=body, headers=SIMPLE)
        assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
        r = await c.post(
            "/api/v1/models/unload", content=json.dumps({"instance_id": LLM}), headers=SIMPLE
        )
        assert r.status_code == 403
        assert await slots(core, port) == before  # llama-server got no request
        assert core.manager.statuses() == status and [p.pid for p in servers()] == [pid]
        # control: a completion does change the slots
        assert (await c.post("/v1/chat/completions", json=chat(LLM))).status_code == 200
        assert await slots(core, port) != before


async def test_dns_rebinding_host_is_refused(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.get("/api/v1/models", headers={"Host": "evil.example:1234"})
        assert r.status_code == 403
        err = r.json()["error"]
        assert err["code"] == "host_not_allowed" and "API_ALLOW_REMOTE" in err["message"]
        r = await c.post(
            "/api/v1/models/load", json={"model": LLM}, headers={"Host": "evil.example"}
        )
        assert r.status_code == 403 and servers() == []
        for ok in ("localhost:1234", "127.0.0.1", "127.3.2.1:80", "[::1]:1234", "LocalHost"):
            assert (await c.get("/api/v1/models", headers={"Host": ok})).status_code == 200


# ── Allowed origins get CORS ──────────────────────────────────────────────────
async def test_an_allowed_origin_works_preflight_included(start_api) -> None:
    core = await start_api(API_CORS_ORIGINS=f"{PAGE}/, http://other.example", API_KEY="k")
    async with client(core) as c:
        r = await c.options(
            "/api/v1/models/load",
            headers={
                "Origin": PAGE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )  # a preflight carries no key
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == PAGE
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["access-control-allow-headers"] == "authorization,content-type"
        auth = {"Origin": PAGE, "Authorization": "Bearer k"}
        r = await c.post("/api/v1/models/load", json={"model": LLM}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == PAGE
        # errors and streamed answers carry it too, so the page can read them
        r = await c.get("/nowhere", headers={"Origin": PAGE})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == PAGE
        body = chat(LLM, 4, stream=True)
        async with c.stream("POST", "/v1/chat/completions", json=body, headers=auth) as s:
            assert s.status_code == 200 and s.headers["access-control-allow-origin"] == PAGE
            await s.aread()
        # any other page is still refused, preflight included
        r = await c.options(
            "/api/v1/models/load",
            headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


async def test_star_allows_any_page_only_when_written(start_api) -> None:
    core = await start_api(API_CORS_ORIGINS="*")
    async with client(core) as c:
        r = await c.get("/api/v1/models", headers={"Origin": EVIL})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == EVIL


async def test_a_link_from_another_site_is_refused(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.get("/api/v1/models", headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        r = await c.get("/api/v1/models", headers={"Sec-Fetch-Site": "none"})  # typed URL
        assert r.status_code == 200


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost", True),
        ("localhost:1234", True),
        ("127.0.0.1:1", True),
        ("127.255.0.9", True),
        ("[::1]", True),
        ("[::1]:1234", True),
        ("evil.example:1234", False),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example", False),
        ("127.1", False),
        ("::1", False),
        ("[::2]:1234", False),
        ("[::ffff:7f00:1]", False),
        ("10.0.0.1", False),
        ("localhost:12a", False),
        ("", False),
        (None, False),
    ],
)
def test_host_check_without_remote(host, ok) -> None:
    assert Guard(settings()).host_allowed(host) is ok


def test_host_check_with_remote(caplog) -> None:
    listed = Guard(settings(API_ALLOW_REMOTE=True, API_ALLOWED_HOSTS="mybox.lan, 10.0.0.5"))
    assert listed.host_allowed("mybox.lan:1234") and listed.host_allowed("10.0.0.5")
    assert listed.host_allowed("localhost") and not listed.host_allowed("evil.example")
    assert "answers any Host" not in caplog.text
    anyone = Guard(settings(API_ALLOW_REMOTE=True))
    assert anyone.host_allowed("evil.example")
    assert "answers any Host" in caplog.text


def test_helpers() -> None:
    assert host_name("[::1]:80") == "[::1]" and host_name("A.b:1") == "a.b"
    assert host_name("[::1") is None and host_name(":80") is None
    assert is_loopback_name("localhost.") and not is_loopback_name("localhostx")
    assert normal_origin("HTTP://LocalHost:80/") == "http://localhost"
    assert normal_origin("https://a.example:443") == "https://a.example"
    assert normal_origin("http://a.example:8080") == "http://a.example:8080"


# ── Limits ────────────────────────────────────────────────────────────────────
def raw_request(port: int, head: bytes, body: bytes = b"", *, close: bool = False) -> bytes:
    """Send ``head`` + ``body`` on a raw socket, return the whole answer (blocking)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)
        if close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


async def test_body_limits(start_api) -> None:
    core = await start_api(API_MAX_BODY_MB=1, API_BODY_TIMEOUT_SECONDS=0.5, JIT_LOAD=False)
    big = b'{"model": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", content=big)
        assert r.status_code == 413 and "API_MAX_BODY_MB" in r.json()["error"]["message"]

        async def chunks():
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        r = await c.post("/v1/chat/completions", content=chunks())  # chunked: no length
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        ok = "x" * (900 * 1024)  # under the limit: read and answered (not loaded)
        r = await c.post("/v1/chat/completions", json={"model": LLM, "messages": [], "x": ok})
        assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_loaded"
    port = core.api.port
    head = (
        b"POST /api/v1/models/load HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    slow = await asyncio.to_thread(raw_request, port, head, b'{"model":')  # then silence
    assert slow.startswith(b"HTTP/1.1 408") and b"API_BODY_TIMEOUT_SECONDS" in slow
    cut = await asyncio.to_thread(raw_request, port, head, b'{"model":', close=True)
    assert cut == b"" or cut.startswith(b"HTTP/1.1 400"), cut[:200]
    assert servers() == []
    async with client(core) as c:
        assert (await c.get("/api/v1/models")).status_code == 200


async def test_connection_cap_counts_requests_being_answered(start_api) -> None:
    """API_MAX_CONNECTIONS caps the requests being answered; a third gets 503 while two are
    held in their handler, and the places come back when they end. (Requests still sending
    their bodies do not count: tests/api/test_abuse.py.)"""
    from aiohttp import web

    from app.core.api.connections import ConnectionTable, GuardedSite, handler_args
    from app.core.api.refusals import RefusalLog

    s = settings(API_MAX_CONNECTIONS=2)
    guard = Guard(s)
    release = asyncio.Event()
    entered = asyncio.Queue()

    async def held(request: web.Request) -> web.Response:
        entered.put_nowait(1)
        await release.wait()
        return web.json_response({"ok": True})

    app = web.Application(middlewares=guard.middlewares())
    app.router.add_get("/held", held)
    runner = web.AppRunner(app)
    await runner.setup()
    table = ConnectionTable(64, s.API_HEADER_TIMEOUT_SECONDS, RefusalLog())
    site = GuardedSite(runner, "127.0.0.1", 0, table, **handler_args(s))
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False
        ) as c:
            first = [asyncio.create_task(c.get("/held")) for _ in range(2)]
            for _ in range(2):
                await entered.get()
            r = await c.get("/held")
            assert r.status_code == 503
            err = r.json()["error"]
            assert err["code"] == "too_many_connections" and "API_MAX_CONNECTIONS" in err["message"]
            release.set()
            assert [(await t).status_code for t in first] == [200, 200]
            assert (await c.get("/held")).status_code == 200  # the places came back
    finally:
        release.set()
        await runner.cleanup()


async def _get_on(reader, writer, path: str = "/api/v1/models") -> tuple[int, dict[str, str]]:
    """One keep-alive GET on an open connection: its status and headers (body read)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in head[1:]) if k}
    await reader.readexactly(int(fields["content-length"]))
    return int(head[0].split()[1]), fields


async def test_idle_keep_alive_connections_do_not_count(start_api) -> None:
    """API_MAX_CONNECTIONS counts requests being answered, not open connections: five
    kept-alive connections, idle after one answer each, leave both places free."""
    core = await start_api(API_MAX_CONNECTIONS=2)
    idle = [await asyncio.open_connection("127.0.0.1", core.api.port) for _ in range(5)]
    try:
        for reader, writer in idle:
            status, fields = await _get_on(reader, writer)
            assert status == 200 and fields.get("connection", "").lower() != "close"
        # five idle connections open, a cap of two: a new client is answered...
        async with client(core) as c:
            assert (await c.get("/api/v1/models")).status_code == 200
        # ...and so is each idle connection, again, on the same socket
        for reader, writer in idle:
            assert (await _get_on(reader, writer))[0] == 200
    finally:
        for _, writer in idle:
            writer.close()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deeper than 200"),
        (b'{"model": ' + b"[" * 201 + b"]" * 201 + b"}", "deeper than 200"),
        (b'{"model": "\\ud800"}', "unpaired surrogate"),  # llama-server answers it with 500
        (b'{"\\udfff": 1}', "unpaired surrogate"),
    ],
)
def test_json_bodies_llama_server_or_python_cannot_take(raw: bytes, problem: str) -> None:
    from app.core.api.common import ApiError, parse_json_object

    with pytest.raises(ApiError) as e:
        parse_json_object(raw)
    assert e.value.status == 400 and problem in e.value.message
    ok = parse_json_object(b'{"m": ' + b"[" * 199 + b'"\\ud83d\\ude00"' + b"]" * 199 + b"}")
    assert ok["m"]


def test_the_issues_probes_against_headless(app_home, tiny_model, llama_server_bin) -> None:
    """The three probes of the issue, as tried: against ``familylog-tray --headless``."""
    env = headless_env(llama_server_bin, tiny_model, LLM_MODEL_ID=LLM)
    api_port = int(env["API_PORT"])
    p = start_headless(env)

    def llama_servers() -> list[psutil.Process]:
        return [c for c in psutil.Process(p.pid).children() if "llama-server" in c.name()]

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", trust_env=False) as c:
            r = c.post("/api/v1/models/load", content=load_body(), headers=SIMPLE)
            assert r.status_code == 403
            r = c.post("/v1/chat/completions", content=json.dumps(chat(LLM)), headers=SIMPLE)
            assert r.status_code == 403
            r = c.get("/api/v1/models", headers={"Host": "evil.example:1234"})
            assert r.status_code == 403
            assert llama_servers() == []  # nothing loaded, not even just in time
            # FamilyLog's own request (no Origin) still loads the model
            r = c.post("/api/v1/models/load", json={"model": LLM}, timeout=60)
            assert r.status_code == 200, r.text
            assert len(llama_servers()) == 1
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
