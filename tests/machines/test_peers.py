"""Peers end to end: a second app (``--headless``, its own home and port) as the first
app's peer, with the real llama-server behind it and real clients (openai, httpx) in front.

Its models are listed under the peer's name; a streamed chat, a load and an unload go
through the first app; a client that goes away stops the peer's answer; the peer stopped is
shown offline and its models answer 502 naming it, and it is back when it runs again; two
apps that list each other list each other's own models only, and a request that would go
round is refused.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from app.config import Settings
from app.core.machines.peers import PeerState
from app.settings_types import PeerEntry, peer_entries
from tests.api.conftest import chat, client
from tests.conftest import free_port
from tests.support.app import AS_APP, make_core, settings_for, start_headless
from tests.support.wait import until

PEER_KEY = "family/peer-llm"


class HeadlessPeer:
    """``familylog-tray --headless`` with its own home and API port (started again on the
    same ones)."""

    def __init__(self, llama_server_bin: str, model: Path, home: Path, **extra) -> None:
        self.env = {
            "LLAMA_SERVER_PATH": llama_server_bin,
            "LLM_MODEL_GGUF": str(model),
            "LLM_MODEL_ID": PEER_KEY,
            "LLAMA_LLM_PORT": str(free_port()),
            "LLAMA_CTX_SIZE": "2048",
            "API_PORT": str(free_port()),
            "FAMILYLOG_TRAY_HOME": str(home),
            **{k: str(v) for k, v in extra.items()},
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    def start(self) -> HeadlessPeer:
        self.proc = start_headless(self.env)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(30) == 0
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.stderr.close()
        self.proc = None

    def get(self, path: str) -> dict:
        return httpx.get(self.url + path, timeout=30, trust_env=False).json()


@pytest.fixture
def peer(llama_server_bin, tiny_model_b, tmp_path) -> Iterator[HeadlessPeer]:
    p = HeadlessPeer(llama_server_bin, tiny_model_b, tmp_path / "peer-home").start()
    try:
        yield p
    finally:
        p.stop()


async def first_app(llama_server_bin, tiny_model, peers: str, **over):
    over = {"API_PORT": 0, **over}
    s = settings_for(llama_server_bin, LLM_MODEL_GGUF=str(tiny_model), PEERS=peers, **over)
    core = make_core(s, **AS_APP)
    core.peers.check_every = 0.2  # the background check, quickly
    await core.start()
    return core


def listed(models: list[dict], key: str) -> dict | None:
    return next((m for m in models if m.get("key", m.get("id")) == key), None)


async def test_a_peer_s_models_are_listed_and_answer_through_this_app(
    peer, llama_server_bin, tiny_model
) -> None:
    core = await first_app(llama_server_bin, tiny_model, f"desk {peer.url}")
    name = f"desk/{PEER_KEY}"
    try:
        await until(lambda: core.peers.shown()[0].online)
        async with client(core) as c:
            v1 = listed((await c.get("/api/v1/models")).json()["models"], name)
            assert v1 is not None and v1["type"] == "llm" and v1["loaded_instances"] == []
            assert v1["peer"]["name"] == "desk" and v1["peer"]["state"] == "online"
            v0 = listed((await c.get("/api/v0/models")).json()["data"], name)
            assert v0["type"] == "llm" and v0["state"] == "not-loaded"
            assert listed((await c.get("/v1/models")).json()["data"], name) is not None
            assert (await c.get(f"/api/v0/models/{name}")).json()["id"] == name
            # a streamed chat through this app, with the real client (closed on this loop:
            # left to the garbage collector, it would close itself on a later test's loop)
            async with openai.AsyncOpenAI(base_url=f"{core.api.url}/v1", api_key="none") as sdk:
                stream = await sdk.chat.completions.create(
                    model=name,
                    messages=[{"role": "user", "content": "Hi"}],
                    max_tokens=16,
                    stream=True,
                    temperature=0,
                )
                text = "".join(
                    [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
                )
            assert text
            # its speed is counted under the peer's name
            stats = (await c.get(f"/api/v0/stats/{name}")).json()
            assert stats["requests"] >= 1, stats
            # a load and an unload go to the peer (LM Studio's REST API)
            assert peer.get("/api/v1/models")["models"][0]["loaded_instances"]  # JIT-loaded
            r = await c.post("/api/v1/models/unload", json={"instance_id": name})
            assert r.status_code == 200 and r.json()["instance_id"] == name, r.text
            assert not peer.get("/api/v1/models")["models"][0]["loaded_instances"]
            r = await c.post("/api/v1/models/load", json={"model": name, "context_length": 1024})
            assert r.status_code == 200, r.text
            assert r.json()["instance_id"] == name and r.json()["config"]["context_length"] == 1024
            loaded = peer.get("/api/v1/models")["models"][0]["loaded_instances"]
            assert loaded and loaded[0]["config"]["context_length"] == 1024
            await until(lambda: core.peers.shown()[0].models[0].state == "loaded")
            # the app's own models still answer, and the peer's are not the app's
            assert (await c.post("/v1/chat/completions", json=chat(None, 4))).status_code in (
                200,
                400,
            )
    finally:
        await core.stop()


async def test_a_client_gone_stops_the_peer_s_answer(peer, llama_server_bin, tiny_model) -> None:
    core = await first_app(llama_server_bin, tiny_model, f"desk {peer.url}")
    name = f"desk/{PEER_KEY}"
    try:
        await until(lambda: core.peers.shown()[0].online)
        async with client(core) as c:
            body = chat(name, 1800, stream=True)
            async with c.stream("POST", "/v1/chat/completions", json=body) as s:
                assert s.status_code == 200
                async for line in s.aiter_lines():
                    if line.startswith("data: "):
                        break  # the answer has begun: go away
        busy = lambda: peer.get("/api/v0/ps")["models"][0]["in_flight"]  # noqa: E731
        await until(lambda: busy() == 0, 20)
    finally:
        await core.stop()


async def test_a_peer_that_stops_is_offline_and_comes_back(
    peer, llama_server_bin, tiny_model
) -> None:
    core = await first_app(llama_server_bin, tiny_model, f"desk {peer.url}")
    name = f"desk/{PEER_KEY}"
    try:
        await until(lambda: core.peers.shown()[0].online)
        peer.stop()
        async with client(core) as c:
            r = await c.post("/v1/chat/completions", json=chat(name))
            assert r.status_code == 502, r.text
            message = r.json()["error"]["message"]
            assert "Peer desk" in message and peer.url in message and "offline" in message
            st = core.peers.shown()[0]
            assert st.state is PeerState.OFFLINE and "desk" in st.text()
            v1 = listed((await c.get("/api/v1/models")).json()["models"], name)
            assert v1["peer"]["state"] == "offline"  # still listed, shown offline
            # Anthropic's clients get the error in their shape
            r = await c.post(
                "/v1/messages",
                json={
                    "model": name,
                    "max_tokens": 4,
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
            assert r.status_code == 502 and r.json()["type"] == "error", r.text
            peer.start()
            await until(lambda: core.peers.shown()[0].online, 30)
            r = await c.post("/v1/chat/completions", json=chat(name))
            assert r.status_code == 200, r.text
    finally:
        await core.stop()


async def test_two_apps_that_list_each_other_make_no_loop(
    llama_server_bin, tiny_model, tiny_model_b, tmp_path
) -> None:
    first_port = free_port()
    second = HeadlessPeer(
        llama_server_bin,
        tiny_model_b,
        tmp_path / "second",
        PEERS=f"first http://127.0.0.1:{first_port}",
    )
    second.start()
    core = None
    try:
        core = await first_app(
            llama_server_bin, tiny_model, f"second {second.url}", API_PORT=first_port
        )
        mine = core.catalogue.role("llm").key
        await until(lambda: core.peers.shown()[0].online)
        # the second app has read the first's list too (it names the first's instance)
        await until(
            lambda: any(
                m["key"] == f"first/{mine}" and m["peer"]["instance"] == core.peers.instance
                for m in second.get("/api/v1/models")["models"]
            ),
            30,
        )
        await core.peers.check()
        async with client(core) as c:
            keys = [m["key"] for m in (await c.get("/api/v1/models")).json()["models"]]
        assert f"second/{PEER_KEY}" in keys
        assert not [k for k in keys if k.startswith("second/first/")], keys
        theirs = [m["key"] for m in second.get("/api/v1/models")["models"]]
        assert f"first/{mine}" in theirs
        assert not [k for k in theirs if k.startswith("first/second/")], theirs
        # a request made to go round: refused, naming the loop
        async with client(core) as c:
            r = await c.post("/v1/chat/completions", json=chat(f"second/first/{mine}"))
            assert r.status_code == 508, r.text
            assert "loop" in r.json()["error"]["message"]
            # each other's own models answer
            r = await c.post("/v1/chat/completions", json=chat(f"second/{PEER_KEY}"))
            assert r.status_code == 200, r.text
    finally:
        if core is not None:
            await core.stop()
        second.stop()


async def test_forwarded_requests_pass_the_same_guard(peer, llama_server_bin, tiny_model) -> None:
    core = await first_app(llama_server_bin, tiny_model, f"desk {peer.url}")
    name = f"desk/{PEER_KEY}"
    try:
        async with client(core) as c:
            r = await c.post(
                "/v1/chat/completions", json=chat(name), headers={"Origin": "http://evil.example"}
            )
            assert r.status_code == 403, r.text
        assert peer.get("/api/v0/ps")["models"] == []  # nothing reached the peer
    finally:
        await core.stop()


async def test_a_peer_with_a_key_gets_its_own_key_not_the_client_s(
    llama_server_bin, tiny_model, tiny_model_b, tmp_path
) -> None:
    keyed = HeadlessPeer(llama_server_bin, tiny_model_b, tmp_path / "keyed", API_KEY="peer-key")
    keyed.start()
    try:
        core = await first_app(
            llama_server_bin, tiny_model, f"desk {keyed.url} wrong-key", API_KEY="mine"
        )
        try:
            await until(lambda: core.peers.shown()[0].state is PeerState.OFFLINE)
            assert "refused the key" in core.peers.shown()[0].reason
            new = core.settings.model_copy(update={"PEERS": f"desk {keyed.url} peer-key"})
            core.live.set(new)
            await until(lambda: core.peers.shown()[0].online)
            async with client(core, headers={"Authorization": "Bearer mine"}) as c:
                r = await c.post("/v1/chat/completions", json=chat(f"desk/{PEER_KEY}"))
                assert r.status_code == 200, r.text
        finally:
            await core.stop()
    finally:
        keyed.stop()


def test_peers_are_checked_as_they_are_typed() -> None:
    text = "laptop http://laptop.lan:1234/v1/, desk=https://desk:8443 sk-1\nold http://old:1234"
    assert peer_entries(Settings(_env_file=None, PEERS=text).PEERS) == [
        PeerEntry("laptop", "http://laptop.lan:1234"),
        PeerEntry("desk", "https://desk:8443", "sk-1"),
        PeerEntry("old", "http://old:1234"),
    ]
    for bad, why in [
        ("laptop", "name URL"),
        ("lap/top http://x", "letters, digits"),
        ("a ftp://x", "http://"),
        ("a http://x, a http://y", "two peers"),
    ]:
        with pytest.raises(ValueError, match=why):
            Settings(_env_file=None, PEERS=bad)
    assert json.dumps(PeerEntry("a", "http://x")) == '["a", "http://x", ""]'
