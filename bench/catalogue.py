"""Benchmark the model catalogue's scan of the user's model folders (MODEL_DIRS).

    uv run python bench/catalogue.py [--models 200] [--rounds 3] [--no-drop-caches]

Writes ``--models`` GGUF files in an LM Studio tree (``<publisher>/<Model-GGUF>/<file>``;
some folders with two quantizations, some with an mmproj) whose headers are real-size:
tokenizers of 32 000 to 151 936 tokens (tokens, token types, and scores or merges as the
tokenizer kind has them), a chat template and a ~400-tensor table. The tensor data is tiny:
the scan reads headers only, so file sizes, not model sizes, are what a real folder's
headers cost. Then times, in one run:

* the cold scan: a fresh ``ModelScanner``, after dropping the page cache when allowed
  (root, ``/proc/sys/vm/drop_caches``; the output says which was measured);
* the cached scan: the same scanner again (target: under 1 s for 200 files);
* the baseline: the reader this branch deleted (``HeaderReader``, a ``gguf.GGUFReader``
  subclass, kept below) against the kept ``read_gguf_info`` on the same files,
  interleaved file by file, alternating which goes first, with the ratio.

``make_tree(root, n)`` is meant for reuse (e.g. the ``/api/v1/models`` latency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
from common import median_ms, pct_ms
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from results import save

from app.core.discovery.gguf_info import read_gguf_info
from app.core.discovery.scan import ModelScanner

# The code this benchmark measures, the scan, the catalogue and GET /api/v1/models: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = [
    "app/core/discovery",
    "app/core/models/catalogue.py",
    "app/core/models/entry.py",
    "app/core/api/lmstudio.py",
]

# (architecture, vocabulary, tokenizer model, with merges) as real model families have them
KINDS = [
    ("llama", 32_000, "llama", False),  # Llama 2 / Mistral 7B: SentencePiece, scores
    ("starcoder2", 49_152, "gpt2", True),  # SmolLM / StarCoder2: BPE, merges
    ("llama", 128_256, "gpt2", True),  # Llama 3
    ("qwen3", 151_936, "gpt2", True),  # Qwen 2.5 / 3
]
QUANTS = [("Q4_K_M", 15), ("Q8_0", 7)]
CHAT_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- for tool in tools %}{{ tool | tojson }}"
    "{%- endfor %}{%- endif %}" + "{%- for message in messages %}{{ message.content }}" * 60
)


def _write_template(path: Path, arch: str, vocab: int, tok_model: str, merges: bool) -> Path:
    w = GGUFWriter(str(path), arch)
    w.add_name(f"{arch} {vocab}")
    w.add_context_length(32768)
    w.add_block_count(36)
    w.add_embedding_length(2560)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_file_type(15)
    w.add_tokenizer_model(tok_model)
    w.add_token_list([f"tok{i:06d}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    if merges:
        w.add_token_merges([f"\u0120a{i} b{i}" for i in range(vocab - 500)])
    else:
        w.add_token_scores([-float(i) for i in range(vocab)])
    w.add_chat_template(CHAT_TEMPLATE)
    for layer in range(36):  # ~400 tensor entries, 16 floats of data each
        for t in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down", "ffn_gate",
                  "attn_norm", "ffn_norm", "attn_q_norm", "attn_k_norm"):  # fmt: skip
            w.add_tensor(f"blk.{layer}.{t}.weight", np.zeros(16, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _write_mmproj(path: Path) -> Path:
    w = GGUFWriter(str(path), "clip")
    w.add_file_type(1)
    w.add_tensor("v.patch_embd.weight", np.zeros(16, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_tree(root: Path, n: int = 200) -> list[Path]:
    """``n`` model files under ``root`` in LM Studio's layout; returns their paths. Every
    fifth folder holds two quantizations (keys ``…@q4_k_m``/``…@q8_0``), every seventh an
    mmproj (not counted in ``n``). The four header templates (one per vocabulary size) are
    written once under ``root/.templates`` (hidden: no scan lists them) and copied, so the
    files are separate files with real-size headers, written in seconds."""
    templates = root / ".templates"
    templates.mkdir(parents=True, exist_ok=True)
    kinds = [
        _write_template(templates / f"{arch}-{vocab}.gguf", arch, vocab, tok, merges)
        for arch, vocab, tok, merges in KINDS
    ]
    mmproj = _write_mmproj(templates / "mmproj.gguf")
    out: list[Path] = []
    folder_no = 0
    while len(out) < n:
        publisher = ("lmstudio-community", "bartowski", "unsloth", "Qwen")[folder_no % 4]
        name = f"Model{folder_no:03d}-{1 + folder_no % 9}B"
        folder = root / publisher / f"{name}-GGUF"
        folder.mkdir(parents=True, exist_ok=True)
        quants = QUANTS if folder_no % 5 == 0 else QUANTS[:1]
        for quant, _ in quants[: n - len(out)]:
            dst = folder / f"{name}-{quant}.gguf"
            shutil.copyfile(kinds[(folder_no + len(out)) % len(kinds)], dst)
            out.append(dst)
        if folder_no % 7 == 0:
            shutil.copyfile(mmproj, folder / f"mmproj-{name}-F16.gguf")
        folder_no += 1
    return out


# ── The baseline: the reader an earlier round deleted (then in app/core/models/gguf_info.py) ──
_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2, GGUFValueType.UINT32: 4,
    GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4, GGUFValueType.UINT64: 8,
    GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
}  # fmt: skip


class HeaderReader(GGUFReader):
    """The deleted ``HeaderReader``: ``GGUFReader`` stepping over long arrays, no tensors."""

    tensor_table: list

    def _get_field_parts(self, orig_offs: int, raw_type: int):
        if GGUFValueType(raw_type) == GGUFValueType.ARRAY and self.byte_order == "I":
            itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            count = int(alen[0])
            skipped = self._skip(orig_offs + 12, GGUFValueType(int(itype[0])), count)
            if count > 64 and skipped is not None:
                return 12 + skipped, [itype, alen], [], [GGUFValueType.ARRAY]
        return super()._get_field_parts(orig_offs, raw_type)

    def _skip(self, offs: int, itype: GGUFValueType, count: int) -> int | None:
        if itype in _SCALAR_SIZES:
            return _SCALAR_SIZES[itype] * count
        if itype != GGUFValueType.STRING:
            return None
        buf = memoryview(self.data)
        pos = offs
        for _ in range(count):
            (n,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + n
        return pos - offs

    def _build_tensors(self, start_offs: int, fields: list) -> None:
        self.tensor_table = fields


def old_read(path: Path) -> tuple:
    """What the deleted ``read_gguf_info`` computed, enough to check both agree."""
    r = HeaderReader(path)
    arch = r.get_field("general.architecture").contents()
    n_params = tensor_bytes = 0
    for f in r.tensor_table:
        n = int(np.prod(f.parts[3].astype(np.int64)))
        n_params += n
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(int(f.parts[4][0]))]
        tensor_bytes += n * size // block
    ctx = r.get_field(f"{arch}.context_length").contents()
    return arch, ctx, n_params, tensor_bytes


def new_read(path: Path) -> tuple:
    i = read_gguf_info(path)
    return i.architecture, i.context_length, i.n_params, i.tensor_bytes


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


async def api_latency(models_dir: Path, empty_dir: Path, n: int) -> tuple[list[float], list[float]]:
    """``GET /api/v1/models`` from the app's API with every model of ``models_dir`` listed,
    against the same API listing none (the baseline), requests interleaved."""
    import httpx

    from app.config import Settings
    from app.core.bootstrap import build_core
    from app.paths import AppPaths

    def core_for(folder: Path):
        s = Settings(_env_file=None, MODEL_DIRS=str(folder), API_PORT=0, HUNG_PROBE_SECONDS=0)  # type: ignore[call-arg]
        return build_core(s, AppPaths.resolve().ensure(), runs=False, supervise=False)

    full, base = core_for(models_dir), core_for(empty_dir)
    await full.start()
    await base.start()
    try:
        assert full.api and base.api and full.api.url and base.api.url
        many, few = [], []
        async with httpx.AsyncClient(trust_env=False) as c:
            got = (await c.get(f"{full.api.url}/api/v1/models")).json()["models"]
            assert len(got) >= 200 or len(got) == len(full.catalogue.entries()), len(got)
            for i in range(n):
                pair = [(full.api.url, many), (base.api.url, few)]
                for url, times in pair if i % 2 == 0 else pair[::-1]:
                    t = time.perf_counter()
                    r = await c.get(f"{url}/api/v1/models")
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200
        return many, few
    finally:
        await full.stop()
        await base.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="cold scans (and cached ones x2)")
    ap.add_argument("--no-drop-caches", action="store_true", help="never drop the page cache")
    ap.add_argument("--requests", type=int, default=300, help="GET /api/v1/models pairs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flt-catalogue-"))
    try:
        t = time.perf_counter()
        files = make_tree(tmp / "models", args.models)
        made_s = time.perf_counter() - t
        total_mib = sum(p.stat().st_size for p in tmp.rglob("*.gguf")) / 2**20
        sizes = sorted({p.stat().st_size / 2**20 for p in files})
        print(
            f"{len(files)} model files (+ mmproj) in {made_s:.1f} s, {total_mib:.0f} MiB in all; "
            f"header sizes {sizes[0]:.1f}-{sizes[-1]:.1f} MiB. Tensor data is tiny (16 floats "
            "per tensor): the scan reads headers only."
        )
        dirs = [tmp / "models"]
        cold, cold_warm, cached, dropped = [], [], [], []
        for _ in range(args.rounds):
            dropped.append(not args.no_drop_caches and drop_page_cache())
            scanner = ModelScanner()
            t = time.perf_counter()
            scan = scanner.scan(dirs)
            cold.append(time.perf_counter() - t)
            assert len(scan.models) == len(files) and not scan.problems, scan.problems
            for _ in range(2):
                t = time.perf_counter()
                again = scanner.scan(dirs)
                cached.append(time.perf_counter() - t)
                assert again.models == scan.models
            assert scanner.cache.reads == len(files) + len(list(tmp.glob("models/*/*/mmproj*")))
            t = time.perf_counter()  # a fresh cache again, the files now in the page cache
            ModelScanner().scan(dirs)
            cold_warm.append(time.perf_counter() - t)
        page = "page cache dropped before each" if all(dropped) else "page cache warm"
        if any(dropped) and not all(dropped):
            page = "page cache dropped before some"
        c, w = median_ms(cold), median_ms(cached)
        print(f"scan of {len(files)} models, {args.rounds} rounds:")
        print(f"  cold scan (fresh cache; {page})  median {c:9.1f} ms")
        cw = median_ms(cold_warm)
        print(f"  cold scan (fresh cache; page cache warm)  median {cw:9.1f} ms")
        print(
            f"  cached scan (no header read)     median {w:9.1f} ms  p95 {pct_ms(cached, 0.95):.1f}"
            f" ms  target < 1000 ms: {'met' if w < 1000 else 'MISSED'}"
        )
        # Baseline, interleaved file by file on warm files, alternating who goes first.
        old_t, new_t = [], []
        for i, path in enumerate(files):
            pair = [(old_read, old_t), (new_read, new_t)]
            results = []
            for fn, times in pair if i % 2 == 0 else pair[::-1]:
                t = time.perf_counter()
                results.append(fn(path))
                times.append(time.perf_counter() - t)
            assert results[0] == results[1], (path, results)
        o, m = median_ms(old_t), median_ms(new_t)
        print(f"header read per file, {len(files)} files interleaved (warm page cache):")
        print(f"  old HeaderReader(GGUFReader) (baseline)  median {o:7.2f} ms")
        print(
            f"  read_gguf_info via read_header (kept)    median {m:7.2f} ms  {o / m:4.2f}x faster"
        )
        print(
            f"  totals: {sum(old_t):.2f} s vs {sum(new_t):.2f} s ({sum(old_t) / sum(new_t):.2f}x)"
        )
        os.environ.setdefault("FAMILYLOG_TRAY_HOME", str(tmp / "home"))
        (tmp / "empty").mkdir()
        many, few = asyncio.run(api_latency(tmp / "models", tmp / "empty", args.requests))
        a50, b50 = median_ms(many), median_ms(few)
        print(f"GET /api/v1/models, {args.requests} requests interleaved:")
        print(f"  no models listed (baseline)  p50 {b50:6.2f} ms")
        print(
            f"  {len(files)} models listed        p50 {a50:6.2f} ms  p95 {pct_ms(many, 0.95):.2f} ms"
            f"  {a50 / b50:4.2f}x  target p50 < 5 ms: {'met' if a50 < 5 else 'MISSED'}"
        )
        figures = {
            "models": len(files),
            "total_mib": round(total_mib, 1),
            "rounds": args.rounds,
            "page_cache_dropped": all(dropped),
            "cold_scan_ms": c,
            "cold_scan_warm_pages_ms": cw,
            "cached_scan_ms": w,
            "cached_scan_p95_ms": pct_ms(cached, 0.95),
            "old_header_ms": o,
            "new_header_ms": m,
            "speedup": round(o / m, 2),
            "api_models_p50_ms": a50,
            "api_models_p95_ms": pct_ms(many, 0.95),
            "api_empty_p50_ms": b50,
        }
        save("catalogue", figures, measures=MEASURES)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
