"""Load and switch on a real-size model: the app's manager against raw llama-server, and a
switch to a cold file without and with the app's read-ahead, against a warm one.

    uv run python bench/switch.py [--rounds 5] [--layers 24] [--keep DIR]

Two llama-architecture GGUFs of random f16 weights (default 2048 wide, 24 layers, FFN 5632,
16 heads / 4 KV heads, a 32,000-token vocabulary: 1.2 B parameters, 2.4 GB each) are
written with the ``gguf`` package. Per round, interleaved:
- raw load: spawn llama-server, poll ``/health`` every 5 ms; app load: ``load_model``;
- raw switch: stop A, wait, start B polled every 5 ms; app switch: ``switch_model``;
- switch to B whose file is cold (page cache dropped with ``posix_fadvise(DONTNEED)``),
  without read-ahead; the same with the app's ``read_ahead`` of B done while A serves; and
  with B warm.
Prints medians and ratios; saves bench/results/switch.json.
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
)
from bench.results import save  # noqa: E402

# The code this benchmark measures, load and switch (the servers package) and the read-ahead: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = ["app/core/servers", "app/core/lifecycle/prefetch.py", "app/platform/processes.py"]

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


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--keep", type=Path, help="write (or reuse) the models in this folder")
    args = ap.parse_args()
    binary = llama_server_bin()
    tmp = Path(tempfile.mkdtemp(prefix="flt-switch-"))
    folder = args.keep or tmp
    folder.mkdir(parents=True, exist_ok=True)
    models = []
    for i, name in enumerate(("big-a-F16.gguf", "big-b-F16.gguf")):
        path = folder / name
        if not path.is_file():
            t = time.perf_counter()
            write_model(
                path, layers=args.layers, width=args.width, ffn=args.ffn, vocab=args.vocab, seed=i
            )
            print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
        models.append(path)
    a, b = models
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
        shutil.rmtree(tmp, ignore_errors=True)
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
    save("switch", res, measures=MEASURES)


if __name__ == "__main__":
    asyncio.run(main())
