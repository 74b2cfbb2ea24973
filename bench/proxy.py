"""Benchmark the API's proxy against llama-server itself, alternating request by request.

    uv run python bench/proxy.py [--rounds 300] [--stream-rounds 40]

The app runs as ``familylog-tray --headless`` (a separate process, as in real use) with the
tiny model loaded; this process is the client, over keep-alive HTTP connections:
(a) a non-streamed chat completion (1 token), straight to llama-server, then through the
    proxy: the added latency at p50 (target under 2 ms);
(b) a streamed completion of 256 tokens (``ignore_eos``): time to the first token and
    tokens per second through the proxy relative to direct (target at least 98 %), and
    the time the proxy adds per token. The tiny model streams thousands of tokens a second
    on the CPU, where the proxy's work competes with llama-server's threads; the script
    also projects the ratio for a model streaming 100 tokens a second;
(c) the speed statistics' cost per request (``app.core.api.speed.Meter``), in process:
    a non-streamed body and a 256-token stream (one chunk per event, as llama-server sends
    them) fed through the meter, interleaved with the same loop without it (target ≤ 0.1 ms).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, free_port, llama_server_bin, median_ms, pct_ms, tiny_models
from results import save

# The code this benchmark measures, the request path through the API to llama-server, and the speed meter: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = [
    "app/core/api/proxy.py",
    "app/core/api/upstream.py",
    "app/core/api/guard.py",
    "app/core/api/server.py",
    "app/core/api/common.py",
    "app/core/api/speed.py",
    "app/core/models/stats.py",
]

CTX = 1024
STREAM_TOKENS = 256
MESSAGES = [{"role": "user", "content": "Tell me a story."}]


def post(conn: http.client.HTTPConnection, path: str, body: dict) -> bytes:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {data[:300]!r}")
    return data


def timed_completion(conn: http.client.HTTPConnection, model: str) -> float:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 1, "temperature": 0}
    s = time.perf_counter()
    post(conn, "/v1/chat/completions", body)
    return time.perf_counter() - s


def timed_stream(conn: http.client.HTTPConnection, model: str) -> tuple[float, float]:
    """(seconds to the first token, tokens per second after it), on a fresh connection."""
    conn.close()
    body = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": STREAM_TOKENS,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    s = time.perf_counter()
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
    )
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"stream: {r.status} {r.read()[:300]!r}")
    first = last = None
    tokens = 0
    while True:
        line = r.readline()
        if not line:
            break
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        event = json.loads(line[6:])
        choices = event.get("choices") or []
        if choices and choices[0].get("delta", {}).get("content"):
            now = time.perf_counter()
            first = first or now
            last = now
            tokens += 1
    conn.close()
    if first is None or last is None or tokens < 2:
        raise RuntimeError("the stream carried no tokens")
    return first - s, (tokens - 1) / (last - first)


def meter_cost(rounds: int = 2000) -> dict:
    """Per request: the relay loop's work with the meter minus without it, interleaved."""
    from app.core.api.speed import Meter
    from app.core.models.stats import SpeedStats

    timings = {"prompt_n": 12, "prompt_ms": 4.2, "predicted_n": 256, "predicted_ms": 900.0}
    event = {"choices": [{"index": 0, "delta": {"content": " word"}}], "object": "chunk"}
    chunks = [b"data: " + json.dumps(event).encode() + b"\n\n"] * STREAM_TOKENS
    chunks.append(b"data: " + json.dumps({"choices": [], "timings": timings}).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    body = json.dumps(
        {"choices": [{"message": {"content": "word " * 256}}], "timings": timings}
    ).encode()
    stats = SpeedStats()
    sink: list[bytes] = []

    def stream(with_meter: bool) -> float:
        s = time.perf_counter()
        meter = Meter(stats, "bench/tiny") if with_meter else None
        for c in chunks:
            sink.append(c)  # stands for resp.write
            if meter is not None:
                meter.chunk(c)
        if meter is not None:
            meter.done()
        sink.clear()
        return time.perf_counter() - s

    def plain(with_meter: bool) -> float:
        s = time.perf_counter()
        meter = Meter(stats, "bench/tiny") if with_meter else None
        sink.append(body)
        if meter is not None:
            meter.body(body)
        sink.clear()
        return time.perf_counter() - s

    out = {}
    for name, fn in (("streamed_256", stream), ("non_streamed", plain)):
        on, off = [], []
        for i in range(rounds):
            pair = [(True, on), (False, off)]
            for flag, xs in pair if i % 2 == 0 else pair[::-1]:
                xs.append(fn(flag))
        out[name] = {
            "without_us": round(statistics.median(off) * 1e6, 2),
            "with_us": round(statistics.median(on) * 1e6, 2),
            "cost_ms": round((statistics.median(on) - statistics.median(off)) * 1000, 4),
        }
    return out


def start_app(
    work: Path, model: Path, llm_port: int, api_port: int, server_threads: int
) -> subprocess.Popen:
    env = dict(
        os.environ,
        FAMILYLOG_TRAY_HOME=str(work / "home"),
        LLAMA_SERVER_PATH=llama_server_bin(),
        LLM_MODEL_GGUF=str(model),
        LLM_MODEL_ID="bench/tiny",
        LLAMA_LLM_PORT=str(llm_port),
        LLAMA_CTX_SIZE=str(CTX),
        API_PORT=str(api_port),
        RUN_MODE="parallel",
        LLAMA_PORTS_OPEN="true",  # the direct path calls llama-server's port itself
        # Both paths hit this one server; leaving it one core fewer than the machine has
        # keeps the client and the proxy from stealing its CPU (on a GPU box it idles).
        LLAMA_EXTRA_ARGS=f"--threads {server_threads}" if server_threads else "",
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "app.main", "--headless"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = p.stdout.readline()
    if "running headless" not in line:
        p.kill()
        raise RuntimeError(f"the app did not start: {line}{p.stdout.read()}")
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--stream-rounds", type=int, default=40)
    ap.add_argument(
        "--server-threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="llama-server --threads (default: one fewer than the CPUs; 0 = its own choice)",
    )
    args = ap.parse_args()

    cost = meter_cost()
    print(f"speed statistics per request (with − without, median): {json.dumps(cost)}")

    work = Path(tempfile.mkdtemp(prefix="flt-bench-proxy-"))
    model, _ = tiny_models(work / "models")
    llm_port, api_port = free_port(), free_port()
    app = start_app(work, model, llm_port, api_port, args.server_threads)
    try:
        direct = http.client.HTTPConnection("127.0.0.1", llm_port, timeout=60)
        proxied = http.client.HTTPConnection("127.0.0.1", api_port, timeout=60)
        t0 = time.perf_counter()
        post(proxied, "/api/v1/models/load", {"model": "bench/tiny"})
        print(f"loaded through the API in {(time.perf_counter() - t0) * 1000:.0f} ms")
        for _ in range(20):  # warm up both paths
            timed_completion(direct, "bench/tiny")
            timed_completion(proxied, "bench/tiny")

        d_lat: list[float] = []
        p_lat: list[float] = []
        for i in range(args.rounds):
            pair = [(direct, d_lat), (proxied, p_lat)]
            for conn, out in pair if i % 2 == 0 else pair[::-1]:
                out.append(timed_completion(conn, "bench/tiny"))
        diffs = [p - d for p, d in zip(p_lat, d_lat, strict=True)]
        print(
            f"non-streamed: direct p50 {median_ms(d_lat)} ms, proxy p50 {median_ms(p_lat)} ms, "
            f"added p50 {round(median_ms(p_lat) - median_ms(d_lat), 2)} ms "
            f"(paired median {median_ms(diffs)} ms)",
            flush=True,
        )

        d_ttft, p_ttft, d_tps, p_tps = [], [], [], []
        for i in range(args.stream_rounds):
            pair = [(direct, d_ttft, d_tps), (proxied, p_ttft, p_tps)]
            for conn, ttft, tps in pair if i % 2 == 0 else pair[::-1]:
                a, b = timed_stream(conn, "bench/tiny")
                ttft.append(a)
                tps.append(b)
        m_dtps, m_ptps = statistics.median(d_tps), statistics.median(p_tps)
        print(
            f"streamed {STREAM_TOKENS} tokens: TTFT direct {median_ms(d_ttft)} ms, proxy "
            f"{median_ms(p_ttft)} ms; tokens/s direct {m_dtps:.0f}, proxy {m_ptps:.0f}",
            flush=True,
        )
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=60)

    added = round(median_ms(p_lat) - median_ms(d_lat), 2)
    tps_ratio = round(m_ptps / m_dtps, 3)
    per_token_us = round(max(0.0, 1e6 / m_ptps - 1e6 / m_dtps), 1)
    ttft_ratio = round(statistics.median(d_ttft) / statistics.median(p_ttft), 3)
    res = {
        "rounds": args.rounds,
        "stream_rounds": args.stream_rounds,
        "server_threads": args.server_threads,
        "completion_ms": {
            "direct_p50": median_ms(d_lat),
            "proxy_p50": median_ms(p_lat),
            "direct_p90": pct_ms(d_lat, 0.9),
            "proxy_p90": pct_ms(p_lat, 0.9),
            "added_p50": added,
            "paired_added_p50": median_ms(diffs),
        },
        "stream": {
            "tokens": STREAM_TOKENS,
            "ttft_direct_ms": median_ms(d_ttft),
            "ttft_proxy_ms": median_ms(p_ttft),
            "ttft_added_ms": round(median_ms(p_ttft) - median_ms(d_ttft), 2),
            "ttft_direct_over_proxy": ttft_ratio,
            "tokens_per_s_direct": round(m_dtps, 1),
            "tokens_per_s_proxy": round(m_ptps, 1),
            "tokens_per_s_proxy_over_direct": tps_ratio,
            # The time the proxy adds to each token, and what that means for a model that
            # generates 100 tokens/s (a real 8-12B model on a GPU): a projection, not a run.
            "added_us_per_token": per_token_us,
            "projected_ratio_at_100_tok_s": round(1 / (1 + per_token_us * 1e-6 * 100), 4),
        },
        "targets": {"added_p50_ms_max": 2.0, "stream_ratio_min": 0.98},
    }
    res["speed_stats_cost"] = cost
    res["targets"]["speed_stats_ms_max"] = 0.1
    res["targets_met"] = {
        "speed_stats": all(c["cost_ms"] <= 0.1 for c in cost.values()),
        "added_p50": added < 2.0,
        "tokens_per_s": tps_ratio >= 0.98,
        "ttft": ttft_ratio >= 0.98,
    }
    print(json.dumps(res, indent=2))
    save("proxy", res, measures=MEASURES)


if __name__ == "__main__":
    main()
