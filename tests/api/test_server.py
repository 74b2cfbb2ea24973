"""The API service: where it may listen, what it says when it cannot, its place in the core."""

from __future__ import annotations

import socket

import httpx
import pytest

from app.core.api.server import ApiServer, ApiServerError, is_loopback, routes
from app.core.notices import Level
from tests.api.conftest import client
from tests.support.app import load_role


def _connects(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_non_loopback_bind_is_refused_with_a_clear_message(start_api) -> None:
    core = await start_api(API_HOST="0.0.0.0")
    api = core.api
    assert api is not None and not api.running and api.url is None
    assert "Refusing to serve the API on 0.0.0.0" in api.error
    assert "API_ALLOW_REMOTE=true" in api.error and "API_HOST=127.0.0.1" in api.error
    notice = core.notices.history[-1]
    assert notice.level is Level.ERROR and notice.text == api.error
    assert not _connects(core.settings.API_PORT)
    with pytest.raises(ApiServerError, match="not a loopback address"):
        await api.serve()


async def test_remote_bind_allowed_on_request(start_api) -> None:
    core = await start_api(API_HOST="0.0.0.0", API_ALLOW_REMOTE=True, API_KEY="k")
    assert core.api.running and core.api.error is None
    async with httpx.AsyncClient(trust_env=False) as c:
        r = await c.get(
            f"http://127.0.0.1:{core.api.port}/api/v1/models",
            headers={"Authorization": "Bearer k"},
        )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.5.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
    ],
)
async def test_is_loopback(host, expected) -> None:
    assert await is_loopback(host) is expected


async def test_port_in_use_is_reported_and_the_core_keeps_running(start_api) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        core = await start_api(API_PORT=port)
        assert core.api.error is not None
        assert f"127.0.0.1:{port}" in core.api.error and "API_PORT" in core.api.error
        assert "LM Studio" in core.api.error
        # The rest of the app still works: the core loads models.
        st = await load_role(core, "llm")
        assert st.state == "ready"


async def test_port_zero_picks_a_free_port(start_api) -> None:
    core = await start_api(API_PORT=0)
    assert core.api.port and core.api.port > 0
    async with client(core) as c:
        assert (await c.get("/v1/models")).status_code == 200


async def test_api_disabled_adds_no_service(start_api) -> None:
    core = await start_api(API_ENABLED=False)
    assert core.api is None
    assert not any(isinstance(s, ApiServer) for s in core.services)


async def test_stop_closes_the_port(start_api) -> None:
    core = await start_api()
    port = core.api.port
    assert _connects(port)
    await core.stop()
    assert not _connects(port)


async def test_an_unknown_path_lists_every_route_the_router_holds(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.get("/api/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    listed = r.json()["error"]["message"].split("This server answers ", 1)[1].split(", ")
    held = [path for _, path in routes(core.api._runner.app)]
    assert listed == list(dict.fromkeys(held))
    for path in ("/api/v1/chat", "/api/v0/ps", "/api/v0/stats", "/api/v0/models/{model}"):
        assert path in listed
