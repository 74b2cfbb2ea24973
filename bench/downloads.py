"""Downloading a real-size model from the stand-in hub: the app's download service against
``huggingface_hub``'s own ``hf_hub_download``, interleaved, on the same server.

    uv run python bench/downloads.py [--rounds 3] [--size-mb 1024] [--keep DIR]

A GGUF with a 150,000-token vocabulary (a header of ~7 MiB) and ``--size-mb`` of tensor
data (random bytes, so nothing compresses) is served by tests/support/hub.py on loopback.
Per round, interleaved (the order turns each round, and each starts after ``os.sync``, so
none pays for the pages another left to write):
- baseline: ``hf_hub_download(repo, file, local_dir=...)``: the library's transfer, no checksum;
- transfer: the app's byte loop alone (``transfer.fetch`` into a part file);
- service: a whole download through ``Downloads.request`` (transfer, SHA-256 check, move,
  folder scan) with an asyncio ticker measuring how late the event loop gets meanwhile.
Also the ranged header read ("will it fit") against the file's size. Prints medians and
ratios; saves bench/results/downloads.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import save  # noqa: E402

# The code this benchmark measures, the download service (transfer, checksum, move, scan)
# and the hub client's header read: its figures (bench/results/) go stale when one changes.
MEASURES = ["app/core/downloads"]

REPO = "bench/Big-GGUF"
NAME = "Big-Q8_0.gguf"
CACHE = Path("/tmp/flt-bench")


def write_model(path: Path, size_mb: int) -> Path:
    from gguf import GGUFWriter

    if path.is_file() and path.stat().st_size > size_mb << 20:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w = GGUFWriter(str(path), "qwen3")
    w.add_name("bench big")
    w.add_context_length(40960)
    w.add_block_count(36)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_embedding_length(4096)
    w.add_token_list([f"tok{i:06d}" for i in range(150_000)])
    w.add_token_merges([f"a{i} b{i}" for i in range(150_000)])
    rows = (size_mb << 20) // (4096 * 2)  # f16 noise: nothing compresses
    w.add_tensor(
        "token_embd.weight", rng.standard_normal((rows, 4096), dtype=np.float32).astype(np.float16)
    )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def baseline(hub_url: str, dest: Path) -> float:
    from huggingface_hub import hf_hub_download

    start = time.perf_counter()
    hf_hub_download(REPO, NAME, local_dir=dest, endpoint=hub_url)
    return time.perf_counter() - start


def transfer_only(part: Path, size: int) -> float:
    from app.core.downloads.hub import HubClient
    from app.core.downloads.transfer import Cancel, fetch

    hub = HubClient()
    meta = hub.metadata(REPO, "main", NAME)
    start = time.perf_counter()
    fetch(hub, meta, part, size, lambda _n: None, Cancel())
    return time.perf_counter() - start


async def service(models: Path, state: Path) -> tuple[float, float, float]:
    """(seconds, loop lateness p99, loop lateness max) of one download through the service."""
    from app.config import Settings
    from app.core.downloads.listing import AfterDownload
    from app.core.downloads.service import Downloads
    from app.core.models.catalogue import Catalogue
    from app.paths import AppPaths

    settings = Settings(_env_file=None, MODEL_DIRS=str(models))  # type: ignore[call-arg]
    catalogue = Catalogue(lambda: settings)
    d = Downloads(
        lambda: settings,
        state,
        on_complete=AfterDownload(catalogue, lambda: settings, AppPaths.resolve()),
    )
    await d.start()
    late: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            late.append(time.perf_counter() - t - 0.005)

    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    job = await d.request(REPO)
    while job.active:
        await asyncio.sleep(0.01)
    took = time.perf_counter() - start
    stop.set()
    await tick
    await d.stop()
    assert job.state == "completed", job.error
    late.sort()
    return took, late[int(0.99 * (len(late) - 1))], late[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keep", type=Path, default=CACHE)
    args = ap.parse_args()

    from tests.support.hub import StandInHub

    work = Path(tempfile.mkdtemp(prefix="flt-bench-dl-"))
    os.environ["FAMILYLOG_TRAY_HOME"] = str(work / "home")
    os.environ["HF_HOME"] = str(work / "hf-home")  # no cache to copy from, no token
    model = write_model(args.keep / f"dl-{args.size_mb}mb.gguf", args.size_mb)
    size = model.stat().st_size
    hub = StandInHub().start()
    os.environ["HF_ENDPOINT"] = hub.url
    hub.add_repo(REPO, {NAME: model})
    results: dict[str, list[float]] = {"baseline": [], "transfer": [], "service": []}
    lateness: list[tuple[float, float]] = []
    try:
        from app.core.downloads.hub import HubClient

        t = time.perf_counter()
        header = HubClient().read_header(REPO, "main", NAME)
        header_s = time.perf_counter() - t
        gets = hub.downloads_of(NAME)
        header_bytes = sum(int(e) - int(s) + 1 for s, e in (g.range[6:].split("-") for g in gets))
        print(
            f"header read: {header_s * 1000:.0f} ms, {len(gets)} ranged requests, "
            f"{header_bytes / 2**20:.1f} MiB of {size / 2**20:.0f} MiB "
            f"({header.array_lengths['tokenizer.ggml.tokens']:,} tokens)"
        )
        kinds = ["baseline", "transfer", "service"]
        for r in range(args.rounds):
            d = work / f"r{r}"
            # each in every place in turn, and each from clean pages: a 1 GiB write left
            # dirty by the one before slows the next (the kernel throttles writers), which
            # favoured whichever ran first
            for kind in kinds[r % 3 :] + kinds[: r % 3]:
                os.sync()
                if kind == "baseline":
                    results[kind].append(baseline(hub.url, d / "hf"))
                elif kind == "transfer":
                    results[kind].append(transfer_only(d / "part" / (NAME + ".part"), size))
                else:
                    took, p99, worst = asyncio.run(service(d / "models", d / "downloads.json"))
                    results[kind].append(took)
                    lateness.append((p99, worst))
            shutil.rmtree(d)
            print(
                f"round {r + 1}: baseline {results['baseline'][-1]:.2f} s, transfer "
                f"{results['transfer'][-1]:.2f} s, service {took:.2f} s (loop late p99 "
                f"{p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms)"
            )
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    mbps = {k: size / v / 1e6 for k, v in med.items()}
    print(f"\n{size / 2**30:.2f} GiB, {args.rounds} rounds, medians:")
    for k in ("baseline", "transfer", "service"):
        print(
            f"  {k:9s} {med[k]:6.2f} s  {mbps[k]:7.1f} MB/s  ({med[k] / med['baseline']:.2f}x baseline)"
        )
    worst = max(w for _p, w in lateness)
    print(
        f"  event loop during a download: p99 late {max(p for p, _w in lateness) * 1000:.1f} ms, max {worst * 1000:.1f} ms"
    )
    save(
        "downloads",
        {
            "size_bytes": size,
            "rounds": args.rounds,
            "seconds": results,
            "median_seconds": med,
            "mb_per_second": mbps,
            "loop_lateness_p99_max": lateness,
            "header": {"seconds": header_s, "bytes": header_bytes, "requests": len(gets)},
        },
        measures=MEASURES,
    )


if __name__ == "__main__":
    main()
