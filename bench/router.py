"""The app against llama.cpp's own router mode, on the same llama-server binary, interleaved.

    uv run python bench/router.py [--sizes tiny,big] [--rounds 7] [--big-rounds 3]
                                  [--keep /tmp/flt-bench]

Both run at once on the same two GGUFs (a folder of hard links): the app as
``familylog-tray --headless`` with ``RUN_MODE=switch`` and ``MODEL_DIRS`` on the folder, the
router as ``llama-server --models-dir DIR --models-max 1`` (one model at a time, the least
recently used evicted: llama.cpp's peer of switch mode). Same context size and threads. Per
round and row, the app and the router in turn (the order alternates each round):

- ``switch``: a chat request (1 token) for the model that is not loaded, so it is swapped in;
- ``loaded_new``: the same model again on a new connection (1 token);
- ``loaded_keep``: the same model on a kept-alive connection (a first request on it is not
  timed); ``reused`` says how often the connection was really kept;
- ``ttft`` and ``tokens_per_s``: a streamed answer of 32 tokens (``ignore_eos``) on a new
  connection: time to the first token, and the answer's tokens (llama-server's own count,
  ``timings.predicted_n`` in its last event) over the time from sending the request to
  receiving the last one. Not "tokens after the first over the time from the first to the
  last": a proxy that passes several tokens on in one write would look faster by that
  measure the more it holds back (on the tiny model the router often delivers all 32 in
  one read, and that measure then gives it over 16,000 tokens/s, five times what its own
  llama-server generates); both ends of this one are fixed points a client sees.

Sizes: ``tiny`` (two tiny generated models, 0.4 MB) and ``big`` (two llama GGUFs of random
f16 weights, 2048 wide, 24 layers, 32k vocabulary, 2.4 GB each; written with bench/switch.py's
generator under ``--keep`` and reused). Prints the medians of each row for both and the ratio
app/router (time: lower is better for the app below 1.0; tokens/s is given as router/app so
that below 1.0 is better too); saves bench/results/router-tiny.json and router-big.json
(bench/results.py), one per size run.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    free_port,
    llama_server_bin,
    start_headless,
    tiny_models,
)
from bench.results import save  # noqa: E402

# The code this benchmark measures, the app's side of a switch and of a proxied request: its
# figures (bench/results/) go stale when one of these files changes.
MEASURES = [
    "app/core/servers",
    "app/core/lifecycle",
    "app/core/slots",
    "app/core/api/proxy.py",
    "app/core/api/upstream.py",
    "app/platform/processes.py",
]

STREAM_TOKENS = 32
MESSAGES = [{"role": "user", "content": "Say something."}]
ROWS = ("switch", "loaded_new", "loaded_keep", "ttft", "tokens_per_s")


class Side:
    """One server under test: a base URL's port and how it names the two models."""

    def __init__(self, name: str, port: int, models: tuple[str, str]) -> None:
        self.name = name
        self.port = port
        self.models = models
        self.current = 0  # index of the model it has loaded
        self.keep = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)


def chat(conn: http.client.HTTPConnection, model: str, max_tokens: int = 1) -> dict:
    body = {"model": model, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0}
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
    )
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"{model}: {r.status} {data[:300]!r}")
    return json.loads(data)


def timed_chat(conn: http.client.HTTPConnection, model: str, *, close: bool = True) -> float:
    s = time.perf_counter()
    chat(conn, model)
    took = time.perf_counter() - s
    if close:
        conn.close()
    return took


def timed_stream(side: Side, model: str) -> tuple[float, float]:
    """(seconds to the first token, tokens/s of the whole answer), on a new connection:
    llama-server's count of the tokens it generated over the time from sending the
    request to receiving the event that ends the answer (the one with its finish reason)."""
    conn = side.conn()
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
        now = time.perf_counter()
        event = json.loads(line[6:])
        choices = event.get("choices") or []
        if choices and choices[0].get("delta", {}).get("content"):
            first = first or now
        if choices and choices[0].get("finish_reason"):
            last = now
        tokens = (event.get("timings") or {}).get("predicted_n", tokens)
    conn.close()
    if first is None or last is None or tokens < 2:
        raise RuntimeError("the stream carried no tokens")
    return first - s, tokens / (last - s)


def wait_http(port: int, path: str, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                c.close()
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}{path}")


def get_json(port: int, path: str) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    data = json.loads(c.getresponse().read())
    c.close()
    return data


def start_app(work: Path, folder: Path, ctx: int, threads: int) -> tuple[subprocess.Popen, int]:
    return start_headless(
        work,
        MODEL_DIRS=str(folder),
        LLAMA_CTX_SIZE=str(ctx),
        LLAMA_PORT=str(free_port()),
        RUN_MODE="switch",
        LLAMA_EXTRA_ARGS=f"--threads {threads}" if threads else "",
    )


def start_router(work: Path, folder: Path, ctx: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [llama_server_bin(), "--models-dir", str(folder), "--models-max", "1",
           "--host", "127.0.0.1", "--port", str(port), "--ctx-size", str(ctx)]  # fmt: skip
    if threads:
        cmd += ["--threads", str(threads)]
    log = open(work / "router.log", "ab")  # noqa: SIM115 (the child keeps it)
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    wait_http(port, "/models")
    return p, port


def model_ids(port: int, path: str, stems: tuple[str, str]) -> tuple[str, str]:
    """The ids a server lists for the two files (by their file names)."""
    ids = [m["id"] for m in get_json(port, path)["data"]]
    out = []
    for stem in stems:
        found = [i for i in ids if stem in i]
        if not found:
            raise RuntimeError(f"{stem} not listed on port {port}: {ids}")
        out.append(found[0])
    return out[0], out[1]


def stop(p: subprocess.Popen, *, group: bool = False) -> None:
    if p.poll() is None:
        if group:
            os.killpg(p.pid, signal.SIGTERM)
        else:
            p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL) if group else p.kill()
        p.wait()


def big_models(folder: Path) -> tuple[Path, Path]:
    from bench.switch import write_model

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name in enumerate(("big-a-F16.gguf", "big-b-F16.gguf")):
        path = folder / name
        if not path.is_file():
            t = time.perf_counter()
            part = path.with_suffix(".part")
            write_model(part, layers=24, width=2048, ffn=5632, vocab=32000, seed=i)
            part.rename(path)
            print(f"wrote {path} in {time.perf_counter() - t:.0f} s", flush=True)
        out.append(path)
    return out[0], out[1]


def run_size(
    name: str, files: tuple[Path, Path], rounds: int, ctx: int, threads: int, work: Path
) -> dict:
    folder = work / f"models-{name}"
    folder.mkdir()
    for f in files:  # hard links: the same inode, so the same page cache for both servers
        os.link(f, folder / f.name)
    stems = (files[0].stem, files[1].stem)
    app, app_port = start_app(work / f"app-{name}", folder, ctx, threads)
    router, router_port = start_router(work, folder, ctx, threads)
    sides = []
    t: dict[str, dict[str, list[float]]] = {}
    reused = {"app": 0, "router": 0}
    try:
        wait_http(app_port, "/v1/models")
        sides = [
            Side("app", app_port, model_ids(app_port, "/v1/models", stems)),
            Side("router", router_port, model_ids(router_port, "/models", stems)),
        ]
        t = {s.name: {r: [] for r in ROWS} for s in sides}
        for s in sides:  # load the first model (not timed) and warm both files
            for m in (s.models[1], s.models[0]):
                timed_chat(s.conn(), m)
            s.current = 0
        for r in range(rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for s in order:  # a request that needs a switch
                s.current = 1 - s.current
                t[s.name]["switch"].append(timed_chat(s.conn(), s.models[s.current]))
            for s in order:  # the loaded model, new connection
                t[s.name]["loaded_new"].append(timed_chat(s.conn(), s.models[s.current]))
            for s in order:  # the loaded model, kept-alive connection
                s.keep.close()
                timed_chat(s.keep, s.models[s.current], close=False)
                sock = s.keep.sock
                took = timed_chat(s.keep, s.models[s.current], close=False)
                reused[s.name] += sock is not None and s.keep.sock is sock
                t[s.name]["loaded_keep"].append(took)
            for s in order:  # a stream
                ttft, tps = timed_stream(s, s.models[s.current])
                t[s.name]["ttft"].append(ttft)
                t[s.name]["tokens_per_s"].append(tps)
            print(
                f"  {name} round {r + 1}/{rounds}: "
                + "; ".join(
                    f"{row} app {t['app'][row][-1] * (1 if row == 'tokens_per_s' else 1000):.1f}"
                    f" router {t['router'][row][-1] * (1 if row == 'tokens_per_s' else 1000):.1f}"
                    for row in ROWS
                ),
                flush=True,
            )
    finally:
        for s in sides:
            s.keep.close()
        stop(app)
        stop(router, group=True)
    out: dict = {"rounds": rounds, "ctx": ctx, "model_bytes": files[0].stat().st_size, "rows": {}}
    for row in ROWS:
        a = statistics.median(t["app"][row])
        b = statistics.median(t["router"][row])
        if row == "tokens_per_s":
            out["rows"][row] = {"app": round(a, 1), "router": round(b, 1),
                                "ratio_router_over_app": round(b / a, 3)}  # fmt: skip
        else:
            out["rows"][row] = {"app_ms": round(a * 1000, 2), "router_ms": round(b * 1000, 2),
                                "ratio_app_over_router": round(a / b, 3),
                                "app_all_ms": [round(x * 1000, 1) for x in t["app"][row]],
                                "router_all_ms": [round(x * 1000, 1) for x in t["router"][row]]}  # fmt: skip
    out["kept_alive_reused"] = {k: f"{v}/{rounds}" for k, v in reused.items()}
    return out


def print_table(results: dict) -> None:
    print("\nmedians; ratio app/router (router/app for tokens/s): <= 1.0 means the app is ahead")
    for size, res in results.items():
        print(f"{size} ({res['model_bytes'] / 1e6:,.1f} MB, ctx {res['ctx']}, "
              f"{res['rounds']} rounds; kept-alive reused {res['kept_alive_reused']}):")  # fmt: skip
        for row, v in res["rows"].items():
            if row == "tokens_per_s":
                print(f"  {row:13s} app {v['app']:9.1f} t/s  router {v['router']:9.1f} t/s  "
                      f"ratio {v['ratio_router_over_app']:.2f}")  # fmt: skip
            else:
                print(f"  {row:13s} app {v['app_ms']:9.1f} ms   router {v['router_ms']:9.1f} ms   "
                      f"ratio {v['ratio_app_over_router']:.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="tiny,big")
    ap.add_argument("--rounds", type=int, default=9, help="rounds on the tiny model")
    ap.add_argument("--big-rounds", type=int, default=3, help="rounds on the real-size model")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=0, help="--threads for both (0: default)")
    ap.add_argument("--keep", type=Path, default=Path("/tmp/flt-bench"))
    args = ap.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="flt-router-", dir=args.keep if "big" in sizes else None))
    results = {}
    try:
        for size in sizes:
            if size == "tiny":
                files, rounds = tiny_models(work / "tiny-files"), args.rounds
            elif size == "big":
                files, rounds = big_models(args.keep), args.big_rounds
            else:
                raise SystemExit(f"unknown size {size!r}: tiny or big")
            print(f"{size}: {rounds} rounds", flush=True)
            results[size] = run_size(size, files, rounds, args.ctx, args.threads, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    for size, figures in results.items():
        figures = {"threads": args.threads or "default", "ctx": args.ctx, **figures}
        save(f"router-{size}", figures, measures=MEASURES)


if __name__ == "__main__":
    main()
