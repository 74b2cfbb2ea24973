"""Benchmark LM Studio's Python SDK against the app's OpenAI-compatible route, alternating
request by request, both through the same running app and the same llama-server.

    uv run python bench/sdk.py [--rounds 100] [--stream-rounds 30]   # -> bench/results/sdk.json

The app runs as ``familylog-tray --headless`` with the tiny model loaded; this process is
the client: the real ``lmstudio`` SDK (its websocket, in its own thread) and plain HTTP.
(a) a one-token answer: ``llm.respond()`` against ``POST /v1/chat/completions``: the
    latency the websocket path adds at p50 (target under 2 ms);
(b) 256 streamed tokens (greedy, so both paths generate the same tokens): time to the
    first fragment and tokens per second of ``respond_stream`` relative to the streamed
    OpenAI route, as a program sees them (the SDK hands every fragment from its websocket
    thread to the caller's, the HTTP client only splits lines);
(c) the same stream with the same client library on both sides (aiohttp: a websocket
    ``predict`` channel against the SSE route), so only the app's side differs: what the
    protocol costs the server (target at least 95 % of the SSE route's tokens/s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import statistics
import tempfile
import time
from pathlib import Path

from common import free_port, median_ms, pct_ms, tiny_models
from proxy import start_app
from results import save

# The code this benchmark measures: the SDK's websocket protocol on the API port, and the
# OpenAI route it is compared with (the same request path bench/proxy.py measures). Its
# figures (bench/results/sdk.json) go stale when one of these files changes.
MEASURES = [
    "app/core/api/lmstudio_ws",
    "app/core/api/proxy.py",
    "app/core/api/upstream.py",
    "app/core/api/guard.py",
    "app/core/api/server.py",
    "app/core/api/common.py",
    "app/core/api/speed.py",
]

KEY = "bench/tiny"
TOKENS = 256
PROMPT = "Tell me a story."


def http_once(conn: http.client.HTTPConnection) -> float:
    body = {"model": KEY, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1}
    s = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "x"})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}")
    return time.perf_counter() - s


def http_stream(port: int) -> tuple[float, float, int]:
    """(seconds to the first token, tokens/s after it, tokens), on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {
        "model": KEY,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
    }
    s = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "x"})
    r = conn.getresponse()
    first = last = None
    n = 0
    while line := r.readline():
        if line.startswith(b"data: {") and b'"content":"' in line:
            last = time.perf_counter()
            first = first or last
            n += 1
    conn.close()
    assert first is not None and last is not None and n > 1
    return first - s, (n - 1) / (last - first), n


def sdk_once(llm) -> float:
    s = time.perf_counter()
    llm.respond(PROMPT, config={"maxTokens": 1})
    return time.perf_counter() - s


def sdk_stream(llm) -> tuple[float, float, int]:
    s = time.perf_counter()
    first = last = None
    n = 0
    for _fragment in llm.respond_stream(PROMPT, config={"maxTokens": TOKENS, "temperature": 0}):
        last = time.perf_counter()
        first = first or last
        n += 1
    assert first is not None and last is not None and n > 1
    return first - s, (n - 1) / (last - first), n


async def _raw_ws(port: int) -> tuple[float, float, int]:
    import aiohttp

    fields = [
        {"key": "llm.prediction.maxPredictedTokens", "value": {"checked": True, "value": TOKENS}},
        {"key": "llm.prediction.temperature", "value": 0},
    ]
    create = {
        "type": "channelCreate",
        "endpoint": "predict",
        "channelId": 1,
        "creationParameter": {
            "modelSpecifier": {"type": "query", "query": {"identifier": KEY}},
            "history": {
                "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
            },
            "predictionConfigStack": {
                "layers": [{"layerName": "apiOverride", "config": {"fields": fields}}]
            },
        },
    }
    async with aiohttp.ClientSession() as s, s.ws_connect(f"ws://127.0.0.1:{port}/llm") as ws:
        await ws.send_json({"authVersion": 1, "clientIdentifier": "b", "clientPasskey": "b"})
        await ws.receive_json()
        t = time.perf_counter()
        await ws.send_json(create)
        first = last = None
        n = 0
        while (m := await ws.receive_json())["type"] != "channelClose":
            if m["type"] == "channelSend" and m["message"]["type"] == "fragment":
                last = time.perf_counter()
                first = first or last
                n += 1
    assert first is not None and last is not None and n > 1
    return first - t, (n - 1) / (last - first), n


async def _raw_sse(port: int) -> tuple[float, float, int]:
    import aiohttp

    body = {
        "model": KEY,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
    }
    async with aiohttp.ClientSession() as s:
        t = time.perf_counter()
        async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as r:
            first = last = None
            n = 0
            async for line in r.content:
                if line.startswith(b"data: {") and b'"content":"' in line:
                    last = time.perf_counter()
                    first = first or last
                    n += 1
    assert first is not None and last is not None and n > 1
    return first - t, (n - 1) / (last - first), n


def raw(rounds: int, port: int) -> tuple[list, list]:
    import asyncio

    async def run() -> tuple[list, list]:
        ws, sse = [], []
        for i in range(rounds):
            pair = [(_raw_ws, ws), (_raw_sse, sse)]
            for fn, out in pair if i % 2 == 0 else pair[::-1]:
                out.append(await fn(port))
        return ws, sse

    return asyncio.run(run())


def main() -> None:
    import lmstudio as lms

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--stream-rounds", type=int, default=30)
    ap.add_argument("--server-threads", type=int, default=1)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flt-bench-sdk-"))
    model, _ = tiny_models(work / "models")
    api_port = free_port()
    app = start_app(work, model, free_port(), api_port, args.server_threads)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=60)
        with lms.Client(f"127.0.0.1:{api_port}") as client:
            t0 = time.perf_counter()
            llm = client.llm.model(KEY)
            print(f"loaded through the SDK in {(time.perf_counter() - t0) * 1000:.0f} ms")
            for _ in range(10):  # warm up both paths
                http_once(conn)
                sdk_once(llm)
            h_lat: list[float] = []
            s_lat: list[float] = []
            for i in range(args.rounds):
                pair = [(lambda: http_once(conn), h_lat), (lambda: sdk_once(llm), s_lat)]
                for fn, out in pair if i % 2 == 0 else pair[::-1]:
                    out.append(fn())
            print(
                f"one token: HTTP p50 {median_ms(h_lat)} ms, SDK p50 {median_ms(s_lat)} ms",
                flush=True,
            )
            h, s = [], []
            for i in range(args.stream_rounds):
                pair = [(lambda: http_stream(api_port), h), (lambda: sdk_stream(llm), s)]
                for fn, out in pair if i % 2 == 0 else pair[::-1]:
                    out.append(fn())
        rw, rs = raw(args.stream_rounds, api_port)
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=60)

    def med(rows: list, i: int) -> float:
        return statistics.median(r[i] for r in rows)

    res = {
        "rounds": args.rounds,
        "stream_rounds": args.stream_rounds,
        "server_threads": args.server_threads,
        "one_token_ms": {
            "http_p50": median_ms(h_lat),
            "sdk_p50": median_ms(s_lat),
            "http_p90": pct_ms(h_lat, 0.9),
            "sdk_p90": pct_ms(s_lat, 0.9),
            "added_p50": round(median_ms(s_lat) - median_ms(h_lat), 2),
        },
        "stream": {
            "tokens_http": int(med(h, 2)),
            "tokens_sdk": int(med(s, 2)),
            "ttft_http_ms": round(med(h, 0) * 1000, 2),
            "ttft_sdk_ms": round(med(s, 0) * 1000, 2),
            "tps_http": round(med(h, 1)),
            "tps_sdk": round(med(s, 1)),
            "tps_ratio": round(med(s, 1) / med(h, 1), 3),
        },
        "protocol_only": {
            "ttft_sse_ms": round(med(rs, 0) * 1000, 2),
            "ttft_ws_ms": round(med(rw, 0) * 1000, 2),
            "tps_sse": round(med(rs, 1)),
            "tps_ws": round(med(rw, 1)),
            "tps_ratio": round(med(rw, 1) / med(rs, 1), 3),
        },
    }
    print(json.dumps(res, indent=2))
    save("sdk", res, measures=MEASURES)


if __name__ == "__main__":
    main()
