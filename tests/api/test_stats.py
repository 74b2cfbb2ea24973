"""Live speed statistics: the proxy reads llama-server's timings (body or the stream's last
event) into per-model figures that survive a reload, reset when asked, and are served on
``GET /api/v0/stats``."""

from __future__ import annotations

import json

import pytest

from app.core.api.speed import TAIL_BYTES, Meter, find_timings
from app.core.models.stats import Sample, SpeedStats, speed_fields, speed_text
from tests.api.conftest import chat, client

LLM = "google/gemma-3-12b"

TIMINGS = {
    "cache_n": 0,
    "prompt_n": 20,
    "prompt_ms": 10.0,
    "prompt_per_second": 2000.0,
    "predicted_n": 30,
    "predicted_ms": 60.0,
    "predicted_per_second": 500.0,
}


def test_find_timings_in_body_and_stream_tail() -> None:
    body = json.dumps({"choices": [{"message": {"content": "x"}}], "timings": TIMINGS}).encode()
    assert find_timings(body) == TIMINGS
    assert find_timings(b'{"choices": []}') is None
    assert find_timings(b'data: {"timings": {"prompt_n": 1') is None  # cut short
    # a streamed answer: many token events, the timings in the last event, split mid-way
    events = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'] * 500
    events.append(b"data: " + json.dumps({"choices": [], "timings": TIMINGS}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    raw = b"".join(events)
    stats = SpeedStats()
    meter = Meter(stats, "m")
    for i in range(0, len(raw), 37):  # arbitrary chunk boundaries
        meter.chunk(raw[i : i + 37])
    assert sum(len(c) for c in meter._tail) < TAIL_BYTES + 37  # only the tail is kept
    meter.done()
    st = stats.get("m")
    assert st is not None and st.requests == 1 and st.tokens == 30
    assert st.generation_tokens_per_second == pytest.approx(500.0)
    assert st.prompt_tokens_per_second == pytest.approx(2000.0)


def test_rolling_figures_window_and_fields() -> None:
    stats = SpeedStats()
    heard: list[str] = []
    stats.subscribe(heard.append)
    assert speed_fields(stats.get("m"))["requests"] == 0
    for i in range(60):
        stats.record("m", Sample(i, 10, 5.0, 10, 100.0 if i < 55 else 50.0, 3.0))
    stats.record("m", None)  # an answer without timings (an embedding) is still a request
    st = stats.get("m")
    assert st is not None and len(st.samples) == 50 and len(st.history()) == 50
    # 50 replies: 45 of 10 tokens in 100 ms, 5 of 10 tokens in 50 ms → 500 / 4750 ms
    assert st.generation_tokens_per_second == pytest.approx(500 * 1000 / 4750)
    assert speed_fields(st) == {
        "generation_tokens_per_second": 105.3,
        "prompt_tokens_per_second": 2000.0,
        "time_to_first_token_ms": 5.0,
        "requests": 61,
        "tokens": 600,
    }
    assert speed_text(st) == "105.3 t/s"
    assert heard == ["m"] * 61
    assert stats.reset("other") == [] and stats.reset() == ["m"] and stats.get("m") is None


async def test_proxy_records_the_servers_own_timings(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(LLM, 16, ignore_eos=True))
        assert r.status_code == 200
        plain = r.json()["timings"]
        st = core.stats.get(LLM)
        assert st is not None and st.requests == 1 and st.tokens == 16
        assert st.last.generation_tokens_per_second == pytest.approx(
            plain["predicted_per_second"], rel=1e-6
        )
        assert st.last.prompt_ms == pytest.approx(plain["prompt_ms"])
        assert st.last.first_byte_ms is not None and st.last.first_byte_ms > 0

        # streamed: the same chunks reach the client, the timings come from the last event
        async with c.stream(
            "POST", "/v1/chat/completions", json=chat(LLM, 24, stream=True, ignore_eos=True)
        ) as s:
            raw = b"".join([chunk async for chunk in s.aiter_raw()])
        events = [
            json.loads(line[6:])
            for line in raw.split(b"\n")
            if line.startswith(b"data: {") and b'"timings"' in line
        ]
        streamed = events[-1]["timings"]
        assert st.requests == 2 and st.tokens == 40
        assert st.last.tokens == streamed["predicted_n"] == 24
        assert st.last.generation_tokens_per_second == pytest.approx(
            streamed["predicted_per_second"], rel=1e-6
        )

        data = (await c.get("/api/v0/stats")).json()["data"]
        assert [d["model"] for d in data] == [LLM]
        one = data[0]
        assert one["loaded"] is True and one["requests"] == 2 and one["tokens"] == 40
        assert one["generation_tokens_per_second"] == round(st.generation_tokens_per_second, 1)
        assert one["time_to_first_token_ms"] > 0 and len(one["history"]) == 2
        assert (await c.get(f"/api/v0/stats/{LLM}")).json()["requests"] == 2

        # a reload keeps the figures (kept by key, not by process) ...
        r = await c.post("/api/v1/models/unload", json={"instance_id": LLM})
        assert r.status_code == 200, r.text
        assert core.lifecycle.ready(LLM) is None
        r = await c.post("/api/v1/models/load", json={"model": LLM})
        assert r.status_code == 200, r.text
        one = (await c.get(f"/api/v0/stats/{LLM}")).json()
        assert one["requests"] == 2 and one["loaded"] is True
        await c.post("/v1/chat/completions", json=chat(LLM, 8, ignore_eos=True))
        assert core.stats.get(LLM).requests == 3

        # ... until a reset
        r = await c.post("/api/v0/stats/reset", json={"model": LLM})
        assert r.json() == {"reset": [LLM]}
        one = (await c.get(f"/api/v0/stats/{LLM}")).json()
        assert one["requests"] == 0 and one["generation_tokens_per_second"] is None
        assert (await c.get("/api/v0/stats/nope")).status_code == 404
