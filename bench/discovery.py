"""Benchmark reading GGUF headers for the first-run model table.

    uv run python bench/discovery.py [--rounds 5] [--vocab 151936] [--models 6]

A real model's header holds its tokenizer: ~150 000 tokens and as many merges (Qwen). We
write such files (tiny tensors, a real-size vocabulary) and time, alternating in one run:
(a) ``gguf.GGUFReader`` (the gguf package's reader, which parses every array element): the
baseline; (b) ``app.core.discovery.gguf_header.read_header`` (skips array contents); and (c)
the whole scan (``ModelScanner``, a fresh header cache each round) of a folder of such models.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import median_ms
from gguf import GGUFReader, GGUFWriter
from results import save

from app.core.discovery.folders import user_folder
from app.core.discovery.gguf_header import read_header
from app.core.discovery.scan import ModelScanner

# The code this benchmark measures, the header reader and the one scan: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = [
    "app/core/discovery/gguf_header.py",
    "app/core/discovery/gguf_info.py",
    "app/core/discovery/scan.py",
]


def write_vocab_model(path: Path, vocab: int) -> Path:
    w = GGUFWriter(str(path), "qwen2")
    w.add_context_length(32768)
    w.add_file_type(15)
    w.add_token_list([f"tok{i:06d}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    w.add_token_merges([f"a{i} b{i}" for i in range(vocab)])
    for i in range(340):  # a 28-layer model has about this many tensors
        w.add_tensor(f"blk.{i}.weight", np.zeros(16, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=151_936)
    ap.add_argument("--models", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        first = write_vocab_model(folder / "model-0-Q4_K_M.gguf", args.vocab)
        for i in range(1, args.models):
            (folder / f"model-{i}-Q4_K_M.gguf").write_bytes(first.read_bytes())
        size_mib = first.stat().st_size / 2**20
        ref, mine, scan = [], [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            GGUFReader(first)
            ref.append(time.perf_counter() - t)
            t = time.perf_counter()
            read_header(first)
            mine.append(time.perf_counter() - t)
            t = time.perf_counter()
            found = ModelScanner().scan([user_folder(folder)])
            scan.append(time.perf_counter() - t)
        assert len(found.models) == args.models
    r, m, s = median_ms(ref), median_ms(mine), median_ms(scan)
    print(f"header of one model ({args.vocab} tokens, {size_mib:.1f} MiB), {args.rounds} rounds:")
    print(f"  gguf.GGUFReader (baseline)  median {r:9.1f} ms")
    print(f"  discovery.read_header       median {m:9.1f} ms   {r / m:5.1f}x faster")
    print(f"  scan of {args.models} such models        median {s:9.1f} ms")
    figures = {
        "vocab": args.vocab,
        "rounds": args.rounds,
        "ggufreader_ms": r,
        "read_header_ms": m,
        "speedup": round(r / m, 1),
        "scan_ms": s,
        "models": args.models,
    }
    save("discovery", figures, measures=MEASURES)


if __name__ == "__main__":
    main()
