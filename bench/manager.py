"""Benchmark the manager against raw llama-server and the seed's algorithm, alternating.

    uv run python bench/manager.py [--rounds 15]

(a) raw: spawn llama-server with the tiny model, poll /health every 5 ms until 200;
(b) LlamaServerManager.load_model until it returns;
(c) the seed's manager as printed (1 s polling; switch sleeps 2 s): the baseline;
(d) switch_model against a raw stop + raw start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from common import (
    free_port,
    llama_server_bin,
    median_ms,
    raw_start,
    raw_stop,
    tiny_models,
)
from results import save

from app.core.servers.manager import LlamaServerManager
from bench.seed_manager import SeedLlamaServerManager

# The code this benchmark measures, the manager and its servers package (spawn, readiness, stop) and the process platform: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = ["app/core/servers", "app/platform/processes.py"]

CTX = 512


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    binary = llama_server_bin()
    work = Path(tempfile.mkdtemp(prefix="flt-bench-"))
    os.chdir(work)  # the seed writes logs/ relative to the working directory
    a, b = tiny_models(work / "models")
    ours = LlamaServerManager(binary, log_dir=work / "logs-ours")
    seed = SeedLlamaServerManager(binary)
    t: dict[str, list[float]] = {
        k: []
        for k in (
            "raw_start",
            "load_model",
            "seed_load",
            "raw_switch",
            "switch_model",
            "seed_switch",
        )
    }
    loop = asyncio.get_running_loop()
    with open(work / "raw.log", "ab") as log:
        for r in range(args.rounds):
            port = free_port()
            # (a) raw start
            s = time.perf_counter()
            p = await loop.run_in_executor(None, raw_start, binary, a, port, log, CTX)
            t["raw_start"].append(time.perf_counter() - s)
            # raw switch = raw stop + raw start
            s = time.perf_counter()
            raw_stop(p)
            p = raw_start(binary, b, port, log, CTX)
            t["raw_switch"].append(time.perf_counter() - s)
            raw_stop(p)
            # (b) ours
            s = time.perf_counter()
            await ours.load_model(str(a), port=port, ctx_size=CTX)
            t["load_model"].append(time.perf_counter() - s)
            s = time.perf_counter()
            await ours.switch_model(port, str(b), ctx_size=CTX)
            t["switch_model"].append(time.perf_counter() - s)
            await ours.unload_model(port)
            # (c) the seed
            s = time.perf_counter()
            await seed.load_model(str(a), port=port, ctx_size=CTX)
            t["seed_load"].append(time.perf_counter() - s)
            s = time.perf_counter()
            await seed.switch_model(port, str(b), ctx_size=CTX)
            t["seed_switch"].append(time.perf_counter() - s)
            await seed.unload_model(port)
            print(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in t.items()),
                flush=True,
            )
    await ours.shutdown()
    await seed.shutdown()

    m = {k: median_ms(v) for k, v in t.items()}
    res = {
        "rounds": args.rounds,
        "median_ms": m,
        "load_overhead_vs_raw_ms": round(m["load_model"] - m["raw_start"], 2),
        "switch_overhead_vs_raw_ms": round(m["switch_model"] - m["raw_switch"], 2),
        "load_ratio_vs_raw": round(m["load_model"] / m["raw_start"], 3),
        "switch_ratio_vs_raw": round(m["switch_model"] / m["raw_switch"], 3),
        "seed_load_over_ours": round(m["seed_load"] / m["load_model"], 2),
        "seed_switch_over_ours": round(m["seed_switch"] / m["switch_model"], 2),
        "targets": {"load_overhead_ms_max": 25, "switch_overhead_ms_max": 50},
    }
    res["targets_met"] = (
        res["load_overhead_vs_raw_ms"] <= 25 and res["switch_overhead_vs_raw_ms"] <= 50
    )
    print("\nmedians (ms):")
    for k, v in m.items():
        print(f"  {k:13s} {v:9.2f}")
    print(f"load_model - raw start      = {res['load_overhead_vs_raw_ms']:+.2f} ms (target <= 25)")
    print(
        f"switch_model - raw stop+start = {res['switch_overhead_vs_raw_ms']:+.2f} ms (target <= 50)"
    )
    print(f"seed load / ours   = {res['seed_load_over_ours']}x")
    print(f"seed switch / ours = {res['seed_switch_over_ours']}x")
    print(f"targets met: {res['targets_met']}")
    save("manager", res, measures=MEASURES)


if __name__ == "__main__":
    asyncio.run(main())
