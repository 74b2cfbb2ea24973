"""Load and switch on a real-size model: the app's manager against raw llama-server, a
switch to a cold file without and with the app's read-ahead, against a warm one, and the
context kept across a switch (the slot cache) against none.

    uv run python bench/switch.py [--rounds 5] [--layers 24] [--keep DIR]
                                  [--context-rounds 3] [--prefix-tokens 2000] [--skip-switch]

Two llama-architecture GGUFs of random f16 weights (default 2048 wide, 24 layers, FFN 5632,
16 heads / 4 KV heads, a 32,000-token vocabulary: 1.2 B parameters, 2.4 GB each) are
written with the ``gguf`` package. Per round, interleaved:
- raw load: spawn llama-server, poll ``/health`` every 5 ms; app load: ``load_model``;
- raw switch: stop A, wait, start B polled every 5 ms; app switch: ``switch_model``;
- switch to B whose file is cold (page cache dropped with ``posix_fadvise(DONTNEED)``),
  without read-ahead; the same with the app's ``read_ahead`` of B done while A serves; and
  with B warm.
Context (``--context-rounds``, 0 to skip): two headless apps in switch mode on the same two
files, one with ``SLOT_CACHE=true``, one with ``false``. Each first evaluates a prompt with a
shared prefix of ``--prefix-tokens`` on A (not timed); then per round, the two interleaved:
a request for B (the switch away; A's slots saved where the cache is on), then a streamed
request for A with the same prefix and a new question: its time to the first token (A loaded
again, its slot restored where the cache is on). Target: with / without <= 0.25.
Prints medians and ratios; saves bench/results/switch.json (the switch part) and
bench/results/switch-context.json (the context part).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.lifecycle.prefetch import read_ahead  # noqa: E402
from app.core.servers.manager import LlamaServerManager  # noqa: E402
from bench.common import (  # noqa: E402
    free_port,
    llama_server_bin,
    median_ms,
    raw_start,
    raw_stop,
    start_headless,
)
from bench.results import save  # noqa: E402

# The code this benchmark measures, load and switch (the servers package) and the read-ahead: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = ["app/core/servers", "app/core/lifecycle/prefetch.py", "app/platform/processes.py"]
# The context part (bench/results/switch-context.json): the slot cache and the hooks that
# save and restore it around a switch.
CONTEXT_MEASURES = ["app/core/slots", "app/core/servers/hooks.py"]

CTX = 2048


def write_model(path: Path, *, layers: int, width: int, ffn: int, vocab: int, seed: int) -> Path:
    """A llama GGUF with random f16 weights: noise as text, real size, load and compute."""
    rng = np.random.default_rng(seed)
    heads, kv_heads = 16, 4
    head_dim = width // heads
    w = GGUFWriter(str(path), "llama")
    w.add_name(path.stem)
    w.add_context_length(4096)
    w.add_embedding_length(width)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)  # MOSTLY_F16
    base = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]
    tokens = base + [f"\u0120w{i}" for i in range(vocab - len(base) - 1)] + ["<|endoftext|>"]
    types = [TokenType.NORMAL] * (len(tokens) - 1) + [TokenType.CONTROL]
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in types])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(len(tokens) - 1)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_add_bos_token(False)
    f16 = GGMLQuantizationType.F16

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    ones = np.ones(width, dtype=np.float32)
    w.add_tensor("token_embd.weight", t(len(tokens), width), raw_dtype=f16)
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", t(len(tokens), width), raw_dtype=f16)
    kv = head_dim * kv_heads
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones)
        w.add_tensor(p + "attn_q.weight", t(width, width), raw_dtype=f16)
        w.add_tensor(p + "attn_k.weight", t(kv, width), raw_dtype=f16)
        w.add_tensor(p + "attn_v.weight", t(kv, width), raw_dtype=f16)
        w.add_tensor(p + "attn_output.weight", t(width, width), raw_dtype=f16)
        w.add_tensor(p + "ffn_norm.weight", ones)
        w.add_tensor(p + "ffn_gate.weight", t(ffn, width), raw_dtype=f16)
        w.add_tensor(p + "ffn_down.weight", t(width, ffn), raw_dtype=f16)
        w.add_tensor(p + "ffn_up.weight", t(ffn, width), raw_dtype=f16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def prefix_text(tokens: int, seed: int = 7) -> str:
    """About ``tokens`` tokens of the generated models' vocabulary (a character each): words
    of letters, the same for a seed."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = []
    n = 0
    while n < tokens:
        w = "".join(rng.choice(letters, int(rng.integers(2, 9))))
        words.append(w)
        n += len(w) + 1
    return "Notes of the family, to be kept: " + " ".join(words)[: max(0, tokens - 34)]


def stream_ttft(port: int, model: str, prompt: str, max_tokens: int = 4) -> tuple[float, dict]:
    """(seconds to the first streamed token, llama-server's timings) of a completion."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "ignore_eos": True}  # fmt: skip
    s = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"{model}: {r.status} {r.read()[:300]!r}")
    first, timings = None, {}
    while line := r.readline():
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        event = json.loads(line[6:])
        if first is None and (event.get("choices") or [{}])[0].get("text"):
            first = time.perf_counter() - s
        timings = event.get("timings") or timings
    conn.close()
    if first is None:
        raise RuntimeError("the stream carried no tokens")
    return first, timings


def context_bench(a: Path, b: Path, rounds: int, prefix_tokens: int, ctx: int) -> dict:
    """Time to the first token after a switch back, with the slot cache and without."""
    import http.client
    import json
    import signal

    work = Path(tempfile.mkdtemp(prefix="flt-context-", dir=a.parent))
    folder = work / "models"
    folder.mkdir()
    for f in (a, b):
        os.link(f, folder / f.name)
    prefix = prefix_text(prefix_tokens)
    apps = {}
    try:
        for name, on in (("cache", "true"), ("none", "false")):
            apps[name] = start_headless(
                work / name, MODEL_DIRS=str(folder), RUN_MODE="switch", SLOT_CACHE=on,
                LLAMA_CTX_SIZE=str(ctx), LLAMA_PORT=str(free_port()),
            )  # fmt: skip
        ids: dict[str, tuple[str, str]] = {}
        for name, (_p, port) in apps.items():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/v1/models")
            listed = [m["id"] for m in json.loads(conn.getresponse().read())["data"]]
            ids[name] = tuple(next(i for i in listed if f.stem in i) for f in (a, b))  # type: ignore[assignment]
        first: dict[str, dict] = {}
        for name, (_p, port) in apps.items():  # evaluate the prefix once (not timed)
            s = time.perf_counter()
            _, first[name] = stream_ttft(port, ids[name][0], prefix + " Question 0: what?")
            print(f"  {name}: prefix of {first[name].get('prompt_n')} tokens evaluated in "
                  f"{time.perf_counter() - s:.1f} s", flush=True)  # fmt: skip
        t: dict[str, list[float]] = {"cache": [], "none": []}
        cached: dict[str, list[int]] = {"cache": [], "none": []}
        for r in range(rounds):
            order = ["cache", "none"] if r % 2 == 0 else ["none", "cache"]
            for name in order:
                port = apps[name][1]
                stream_ttft(port, ids[name][1], "Hello.", 1)  # the switch away
                took, timings = stream_ttft(port, ids[name][0], f"{prefix} Question {r + 1}: why?")
                t[name].append(took)
                cached[name].append(int(timings.get("cache_n") or 0))
            print(f"  context round {r + 1}/{rounds}: TTFT with the cache "
                  f"{t['cache'][-1] * 1000:.0f} ms ({cached['cache'][-1]} tokens from the "
                  f"cache), without {t['none'][-1] * 1000:.0f} ms", flush=True)  # fmt: skip
    finally:
        for proc, _port in apps.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)
    with_, without = median_ms(t["cache"]), median_ms(t["none"])
    return {
        "rounds": rounds,
        "ctx": ctx,
        "prefix_tokens": int(first["none"].get("prompt_n") or 0),
        "ttft_with_cache_ms": with_,
        "ttft_without_ms": without,
        "ratio": round(with_ / without, 3),
        "target_ratio_max": 0.25,
        "cache_n_with": cached["cache"],
        "cache_n_without": cached["none"],
        "with_all_ms": [round(x * 1000, 1) for x in t["cache"]],
        "without_all_ms": [round(x * 1000, 1) for x in t["none"]],
    }


async def switch_bench(a: Path, b: Path, args: argparse.Namespace, binary: str, tmp: Path) -> dict:
    """The load and switch pairs, and the cold / read-ahead / warm switches."""
    kw = {"ctx_size": CTX, "timeout": 600}
    ours = LlamaServerManager(binary, log_dir=tmp / "logs")
    t: dict[str, list[float]] = {
        k: []
        for k in ("raw_load", "app_load", "raw_switch", "app_switch", "cold", "prefetched", "warm")
    }
    loop = asyncio.get_running_loop()
    try:
        with open(tmp / "raw.log", "ab") as log:
            for r in range(args.rounds):
                port = free_port()
                for f in (a, b):  # the load and switch pairs measure warm files
                    read_ahead(f, threading.Event())
                order = ["raw", "app"] if r % 2 == 0 else ["app", "raw"]
                for who in order:
                    if who == "raw":
                        s = time.perf_counter()
                        p = await loop.run_in_executor(None, raw_start, binary, a, port, log, CTX)
                        t["raw_load"].append(time.perf_counter() - s)
                        s = time.perf_counter()
                        await loop.run_in_executor(None, raw_stop, p)
                        p = await loop.run_in_executor(None, raw_start, binary, b, port, log, CTX)
                        t["raw_switch"].append(time.perf_counter() - s)
                        await loop.run_in_executor(None, raw_stop, p)
                    else:
                        s = time.perf_counter()
                        await ours.load_model(str(a), port=port, **kw)
                        t["app_load"].append(time.perf_counter() - s)
                        s = time.perf_counter()
                        await ours.switch_model(port, str(b), **kw)
                        t["app_switch"].append(time.perf_counter() - s)
                        await ours.unload_model(port)
                # a switch A -> B with B cold, read ahead while A serves, or warm
                for case in (
                    ("cold", "prefetched", "warm") if r % 2 == 0 else ("warm", "prefetched", "cold")
                ):
                    read_ahead(a, threading.Event())
                    if case != "warm":
                        drop_cache(b)
                    else:
                        read_ahead(b, threading.Event())
                    await ours.load_model(str(a), port=port, **kw)
                    if case == "prefetched":
                        s = time.perf_counter()
                        await loop.run_in_executor(None, read_ahead, b, threading.Event())
                        took = time.perf_counter() - s
                        print(f"  read-ahead of B while A serves: {took:.2f} s", flush=True)
                    s = time.perf_counter()
                    await ours.switch_model(port, str(b), **kw)
                    t[case].append(time.perf_counter() - s)
                    await ours.unload_model(port)
                print(f"round {r + 1}/{args.rounds}: "
                      + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in t.items()),
                      flush=True)  # fmt: skip
    finally:
        await ours.shutdown()
    m = {k: median_ms(v) for k, v in t.items()}
    pairs_load = sorted((x - y) * 1000 for x, y in zip(t["app_load"], t["raw_load"], strict=True))
    pairs_switch = sorted(
        (x - y) * 1000 for x, y in zip(t["app_switch"], t["raw_switch"], strict=True)
    )
    res = {
        "model_gib": round(a.stat().st_size / 2**30, 2) if a.exists() else None,
        "rounds": args.rounds,
        "median_ms": m,
        "load_overhead_ms": round(pairs_load[len(pairs_load) // 2], 1),
        "switch_overhead_ms": round(pairs_switch[len(pairs_switch) // 2], 1),
        "cold_over_warm": round(m["cold"] / m["warm"], 3),
        "prefetched_over_warm": round(m["prefetched"] / m["warm"], 3),
    }
    print("\nmedians (ms):")
    for k, v in m.items():
        print(f"  {k:11s} {v:9.1f}")
    print(f"load: app - raw   median pair {res['load_overhead_ms']:+.1f} ms (target <= 10)")
    print(f"switch: app - raw median pair {res['switch_overhead_ms']:+.1f} ms (target <= 30)")
    print(f"cold switch / warm        {res['cold_over_warm']:.2f}x")
    print(f"read ahead switch / warm  {res['prefetched_over_warm']:.2f}x (target <= 1.15)")
    return res


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--keep", type=Path, help="write (or reuse) the models in this folder")
    ap.add_argument("--context-rounds", type=int, default=3, help="0: no context part")
    ap.add_argument("--prefix-tokens", type=int, default=2000)
    ap.add_argument("--context-ctx", type=int, default=4096)
    ap.add_argument("--skip-switch", action="store_true", help="only the context part")
    ap.add_argument("--models", type=Path, nargs=2, help="use these two GGUFs instead")
    args = ap.parse_args()
    binary = llama_server_bin()
    tmp = Path(tempfile.mkdtemp(prefix="flt-switch-"))
    folder = args.keep or tmp
    folder.mkdir(parents=True, exist_ok=True)
    models = []
    for i, name in enumerate(("big-a-F16.gguf", "big-b-F16.gguf")):
        path = folder / name
        if not path.is_file() and not args.models:
            t = time.perf_counter()
            write_model(
                path, layers=args.layers, width=args.width, ffn=args.ffn, vocab=args.vocab, seed=i
            )
            print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
        models.append(path)
    a, b = args.models or models
    try:
        if not args.skip_switch:
            save("switch", await switch_bench(a, b, args, binary, tmp), measures=MEASURES)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.context_rounds > 0:
        ctx = await asyncio.to_thread(
            context_bench, a, b, args.context_rounds, args.prefix_tokens, args.context_ctx
        )
        print(f"time to first token after a switch back, {ctx['prefix_tokens']}-token shared "
              f"prefix: with the slot cache {ctx['ttft_with_cache_ms']:.0f} ms, without "
              f"{ctx['ttft_without_ms']:.0f} ms: {ctx['ratio']:.3f}x (target <= 0.25)")  # fmt: skip
        save("switch-context", ctx, measures=CONTEXT_MEASURES)


if __name__ == "__main__":
    asyncio.run(main())
