"""Benchmark more than one machine: a real-size model here and across two llama.cpp RPC
workers on loopback (the protocol's cost without a network), and a request through a peer.

    uv run python bench/rpc.py [--rounds 5] [--prompt-tokens 24] [--gen-tokens 32]

It saves its figures to bench/results/rpc.json (``bench/results.py``).

Everything runs as the app runs it, each in its own process: two workers started by the
app's own ``familylog-tray --rpc-worker``, and two ``--headless`` apps. App "here" loads the
model on this machine; app "peer" loads the same file across the two workers (the load
config's ``rpc``) and is app "here"'s peer (``PEERS``). Client-side, interleaved round by
round (the order alternating), with llama-server's own timings beside; each ratio is the
median of the rounds' own ratios:

(a) a streamed completion of ``--gen-tokens`` tokens after a prompt of about
    ``--prompt-tokens`` tokens (``ignore_eos``, temperature 0): time to the first token and
    tokens per second after it, here vs across the workers: the ratios are the protocol's
    cost (both workers and llama-server share this machine's cores, as they would not on
    three machines);
(b) the added latency of a request through the peer: a one-token completion of a tiny
    model asked of the peer directly and through app "here" (``<peer>/<model>``), p50 and
    p90; and the big model's stream through the peer vs asked of the peer directly.

The model is a generated llama of random f16 weights (bench/switch.py's ``write_model``,
24 layers, width 2048: 2.4 GB), kept in /tmp/flt-bench and reused.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, free_port, llama_server_bin, tiny_models
from results import save

MEASURES = ["app/core/machines", "app/core/api/peers.py", "app/core/api/proxy.py"]
CACHE = Path("/tmp/flt-bench")
BIG = "big-a-F16.gguf"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "the",
    "family",
    "sleeps",
]


def ensure_big() -> Path:
    path = CACHE / BIG
    if not path.is_file():
        sys.path.insert(0, str(ROOT / "bench"))
        from switch import write_model

        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"writing {path} …", flush=True)
        write_model(path, layers=24, width=2048, ffn=5632, vocab=32000, seed=0)
    return path


def app(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.main", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def started(p: subprocess.Popen, word: str) -> subprocess.Popen:
    line = p.stdout.readline()
    if word not in line:
        raise RuntimeError(f"did not start: {line!r}")
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def post(port: int, path: str, body: dict, timeout: float = 1800) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


def stream(port: int, model: str, prompt: str, tokens: int) -> dict:
    """Time to the first token, tokens per second after it (client side), and
    llama-server's own figures from the last event's timings."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0,
        "seed": 1,
        "ignore_eos": True,
        "stream": True,
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    try:
        s = time.perf_counter()
        conn.request(
            "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        r = conn.getresponse()
        if r.status != 200:
            raise RuntimeError(f"{model}: {r.status} {r.read()[:300]!r}")
        first = last = None
        n = 0
        timings: dict = {}
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "timings" in event:
                timings = event["timings"]
            delta = (event.get("choices") or [{}])[0].get("delta", {})
            if delta.get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                n += 1
        gen = (n - 1) / (last - first) if first and last and last > first else None
        return {
            "ttft_s": (first - s) if first else None,
            "tokens_per_s": gen,
            "server_prompt_ms": timings.get("prompt_ms"),
            "server_tokens_per_s": timings.get("predicted_per_second"),
        }
    finally:
        conn.close()


def one_token(port: int, model: str) -> float:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    s = time.perf_counter()
    post(port, "/v1/chat/completions", body)
    return time.perf_counter() - s


def med(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=24)
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--peer-rounds", type=int, default=60)
    args = ap.parse_args()
    big = ensure_big()
    work = Path(tempfile.mkdtemp(prefix="flt-bench-rpc-"))
    tiny, _ = tiny_models(work / "tiny")
    binary = llama_server_bin()
    base = {
        "LLAMA_SERVER_PATH": binary,
        "LLAMA_CTX_SIZE": "1024",
        "RUN_MODE": "parallel",
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[subprocess.Popen] = []
    try:
        ports = [free_port(), free_port()]
        for i, p in enumerate(ports):
            env = {**base, "FAMILYLOG_TRAY_HOME": str(work / f"worker{i}")}
            procs.append(started(app("--rpc-worker", "--port", str(p), env=env), "Sharing"))
        workers = [f"127.0.0.1:{p}" for p in ports]
        peer_port, here_port = free_port(), free_port()
        key = "bench/big-f16"
        common = {
            **base,
            "LLM_MODEL_GGUF": str(big),
            "LLM_MODEL_ID": key,
            "MODEL_DIRS": str(tiny.parent),
            "LLAMA_READY_TIMEOUT": "1200",
        }
        peer_env = {
            **common,
            "API_PORT": str(peer_port),
            "LLAMA_LLM_PORT": str(free_port()),
            "FAMILYLOG_TRAY_HOME": str(work / "peer"),
        }
        procs.append(started(app("--headless", env=peer_env), "running headless"))
        here_env = {
            **common,
            "API_PORT": str(here_port),
            "LLAMA_LLM_PORT": str(free_port()),
            "FAMILYLOG_TRAY_HOME": str(work / "here"),
            "PEERS": f"peer http://127.0.0.1:{peer_port}",
        }
        procs.append(started(app("--headless", env=here_env), "running headless"))
        t = time.perf_counter()
        post(here_port, "/api/v1/models/load", {"model": key})
        load_here = time.perf_counter() - t
        t = time.perf_counter()
        post(peer_port, "/api/v1/models/load", {"model": key, "rpc": workers})
        load_rpc = time.perf_counter() - t
        print(f"loaded here in {load_here:.1f} s, across {workers} in {load_rpc:.1f} s", flush=True)
        # the generated model's vocabulary makes one token of each character
        prompt = " ".join(WORDS)[: args.prompt_tokens]
        for port, name in ((here_port, key), (peer_port, key)):  # warm-up
            stream(port, name, "warm up", 2)
        runs: dict[str, list[dict]] = {"here": [], "workers": [], "through_peer": []}
        cases = {
            "here": (here_port, key),
            "workers": (peer_port, key),
            "through_peer": (here_port, f"peer/{key}"),
        }
        for r in range(args.rounds):
            order = list(cases) if r % 2 == 0 else list(reversed(cases))
            for case in order:
                port, name = cases[case]
                # a prompt of its own each time: nothing from the cache
                runs[case].append(stream(port, name, f"{r}{case[0]} {prompt}", args.gen_tokens))
                print(r, case, runs[case][-1], flush=True)
        tiny_key = tiny.stem
        one_token(peer_port, tiny_key)
        one_token(here_port, f"peer/{tiny_key}")
        direct, through = [], []
        for r in range(args.peer_rounds):
            pair = [(direct, peer_port, tiny_key), (through, here_port, f"peer/{tiny_key}")]
            for out, port, name in pair if r % 2 == 0 else reversed(pair):
                out.append(one_token(port, name))
        figures = {
            "model": {"file": BIG, "size_gb": round(big.stat().st_size / 1e9, 2)},
            "load_s": {"here": round(load_here, 1), "across_two_workers": round(load_rpc, 1)},
            **{
                case: {
                    "ttft_s": med([x["ttft_s"] for x in xs]),
                    "tokens_per_s": med([x["tokens_per_s"] for x in xs]),
                    "server_prompt_ms": med([x["server_prompt_ms"] for x in xs]),
                    "server_tokens_per_s": med([x["server_tokens_per_s"] for x in xs]),
                }
                for case, xs in runs.items()
            },
            "peer_one_token_ms": {
                "direct_p50": round(pct(direct, 0.5) * 1000, 2),
                "through_peer_p50": round(pct(through, 0.5) * 1000, 2),
                "direct_p90": round(pct(direct, 0.9) * 1000, 2),
                "through_peer_p90": round(pct(through, 0.9) * 1000, 2),
            },
        }
        f = figures

        def paired(a: str, b: str, what: str) -> float | None:
            """The median of the rounds' own ratios: each pair ran back to back, so a
            machine busy with other work in one round weighs on both sides of its ratio."""
            found = med([ratio(x[what], y[what]) for x, y in zip(runs[a], runs[b], strict=True)])
            return round(found, 3) if found is not None else None

        ratios = {
            "workers_vs_here_tokens_per_s": paired("workers", "here", "tokens_per_s"),
            "workers_vs_here_ttft": paired("workers", "here", "ttft_s"),
            "workers_vs_here_server_tokens_per_s": paired("workers", "here", "server_tokens_per_s"),
            # through app "here" to the peer, whose model runs across the workers, vs asked
            # of the peer directly
            "through_peer_vs_direct_tokens_per_s": paired(
                "through_peer", "workers", "tokens_per_s"
            ),
            "through_peer_vs_direct_ttft": paired("through_peer", "workers", "ttft_s"),
            "peer_added_ms_p50": round(
                f["peer_one_token_ms"]["through_peer_p50"] - f["peer_one_token_ms"]["direct_p50"],
                2,
            ),
        }
        print(json.dumps({"figures": figures, "ratios": ratios}, indent=2))
        path = save("rpc", {**figures, "ratios": ratios}, measures=MEASURES)
        print(f"wrote {path}")
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(work, ignore_errors=True)  # the apps' homes and the tiny models


if __name__ == "__main__":
    main()
