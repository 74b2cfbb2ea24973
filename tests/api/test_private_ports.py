"""Private llama-server ports: each start of a server gets its own random key and serves
under a path prefix; the app's proxy, readiness polls and hung probe use both; anything
else gets 401 (under the prefix) or 404 (llama-server's always-open /health, /v1/models and
/models, which exist only under the prefix), and no web page gets a CORS grant. A FamilyLog
that calls the ports directly (LLAMA_PORTS_OPEN, derived from RUN_PRELOAD) gets them open,
as before."""

from __future__ import annotations

import httpx
import psutil
import pytest

from app.config import Settings
from app.core.models.entry import LLM as LLM_PROFILE
from app.core.servers.keys import CORS_ORIGIN, PRIVATE_PREFIX, auth_headers
from app.core.servers.states import ServerState
from tests.api.conftest import chat, client
from tests.support.app import load_role, supervisor
from tests.support.wait import until

LLM = "google/gemma-3-12b"
API_KEY = "s3cret-for-the-api"
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def direct(port: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False)


async def test_servers_answer_only_the_app(start_api) -> None:
    core = await start_api(API_KEY=API_KEY)
    port = core.settings.LLAMA_LLM_PORT
    async with client(core, headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        r = await c.post("/v1/chat/completions", json=chat(LLM))  # loads, then proxies
        assert r.status_code == 200, r.text
    st = core.manager.status(port)
    assert st.state is ServerState.READY and st.key and st.key != API_KEY
    assert st.key not in repr(st)
    proc = psutil.Process(st.pid)
    assert proc.environ()["LLAMA_API_KEY"] == st.key
    assert st.key not in " ".join(proc.cmdline())

    pre = st.prefix
    assert pre == PRIVATE_PREFIX
    async with direct(port) as d:
        for bearer in (None, API_KEY, "nope"):
            h = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            for path in ("/v1/chat/completions", "/completion"):
                for where in (path, pre + path):
                    assert (await d.post(where, json=BODY, headers=h)).status_code in (401, 404)
            # what llama-server answers without its key whatever its options: not here
            for path in ("/health", "/v1/health", "/v1/models", "/models", "/props", "/slots"):
                r = await d.get(path, headers=h)
                assert r.status_code in (401, 404), (path, r.status_code, r.text[:200])
                assert (await d.get(pre + path, headers=h)).status_code == 401, path
        ok = await d.post(pre + "/v1/chat/completions", json=BODY, headers=auth_headers(st))
        assert ok.status_code == 200, ok.text
        for path in ("/slots", "/health", "/v1/models"):
            assert (await d.get(pre + path, headers=auth_headers(st))).status_code == 200
        # No web page gets a CORS grant: no origin echoed, no credentials, preflight included.
        page = {"Origin": "http://evil.example"}
        for r in (
            await d.get("/v1/models", headers=page),
            await d.get(pre + "/v1/models", headers=page),
            await d.options(
                pre + "/v1/chat/completions",
                headers={**page, "Access-Control-Request-Method": "POST"},
            ),
        ):
            assert r.headers.get("access-control-allow-origin") in (None, CORS_ORIGIN)
            assert r.headers.get("access-control-allow-credentials") != "true"

    # The hung probe sends the key: its /slots request is answered, not refused.
    seen: list[int] = []

    async def record(r: httpx.Response) -> None:
        seen.append(r.status_code)

    async with httpx.AsyncClient(trust_env=False, event_hooks={"response": [record]}) as probe:
        assert supervisor(core).probe_all(probe) == []
        await until(lambda: seen, 30)
    assert seen == [200]


async def test_each_start_gets_a_new_key_and_the_same_spec(start_api) -> None:
    core = await start_api(JIT_LOAD=False)
    first = await load_role(core, LLM_PROFILE)
    await core.manager.unload_model(first.port)
    second = await load_role(core, LLM_PROFILE)
    assert first.spec == second.spec  # the same server, for runs and restarts
    assert first.key and second.key and first.key != second.key
    async with direct(second.port) as d:
        url = second.prefix + "/v1/chat/completions"
        old = await d.post(url, json=BODY, headers=auth_headers(first))
        assert old.status_code == 401
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(LLM))
        assert r.status_code == 200, r.text


async def test_open_ports_for_a_familylog_that_calls_them(start_api) -> None:
    core = await start_api(RUN_PRELOAD="llm", JIT_LOAD=False)  # LLAMA_PORTS_OPEN=auto
    assert core.settings.llama_ports_open
    st = await load_role(core, LLM_PROFILE)
    assert st.key is None and auth_headers(st) == {} and st.prefix == ""
    async with direct(st.port) as d:
        r = await d.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200, r.text
        # open to programs, still closed to web pages: no origin echoed, no credentials
        r = await d.get("/v1/models", headers={"Origin": "http://evil.example"})
        assert r.headers.get("access-control-allow-origin") == CORS_ORIGIN
        assert r.headers.get("access-control-allow-credentials") != "true"
    assert "LLAMA_API_KEY" not in psutil.Process(st.pid).environ()


@pytest.mark.parametrize(
    ("values", "open_"),
    [
        ({}, False),  # unmigrated FamilyLog: it talks to the API on 1234
        ({"RUN_PRELOAD": "both"}, True),  # section 3: it calls the ports the app preloaded
        ({"RUN_PRELOAD": "llm", "CONNECTION_TYPE": "online"}, False),
        ({"RUN_PRELOAD": "both", "FAMILYLOG_MANAGES_MODELS": True}, False),  # its own servers
        ({"RUN_PRELOAD": "both", "LLAMA_PORTS_OPEN": "false"}, False),
        ({"LLAMA_PORTS_OPEN": "yes"}, True),
        ({"LLAMA_PORTS_OPEN": "Off"}, False),
    ],
)
def test_which_set_up_opens_the_ports(values, open_) -> None:
    assert Settings(_env_file=None, **values).llama_ports_open is open_  # type: ignore[call-arg]
