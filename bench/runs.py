"""Benchmark "Process now": start latency and the asyncio loop's worst stall during a run.

    uv run python bench/runs.py [--rounds 30] [--seconds 5]

(a) start: from ``runner.start()`` (the "Process now" call) to the child process running
    (spawned, its PID known), with nothing to preload; baseline: ``subprocess.Popen`` of
    the same command in the same run. Also to its first output line reaching a subscriber,
    against reading it from the raw Popen's pipe. Target: start under 100 ms.
(b) stall: the loop's worst lateness (a 5 ms ticker) while a run prints 5,000 lines/s for
    ``--seconds``; baseline: the same ticker on an idle loop. Also during a 100 MB flood
    (as fast as the child can print). Target: worst stall under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median_ms, pct_ms
from results import save

from app.config import Settings
from app.core.bootstrap import build_core
from app.paths import AppPaths

# The code this benchmark measures, starting a run and reading its output: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = ["app/core/runs", "app/platform/processes.py"]

FIRST_LINE = [sys.executable, "-S", "-c", "print('ready', flush=True)"]
RATE_SCRIPT = r"""
import sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
line = "progress " + "x" * 70
start = time.monotonic()
n = 0
while n < rate * seconds:
    target = start + n / rate
    delay = target - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    for _ in range(50):
        print(line, n)
        n += 1
    sys.stdout.flush()
"""


def make_core(home: Path, command: list[str], workdir: Path):
    paths = AppPaths(config_dir=home, log_dir=home / "logs", state_dir=home / "state").ensure()
    settings = Settings(
        FAMILYLOG_DIR=str(workdir),
        FAMILYLOG_COMMAND=shlex.join(command),
        API_ENABLED=False,
        RUN_PRELOAD="none",
    )
    return build_core(settings, paths, schedule=False)


async def bench_start(home: Path, workdir: Path, rounds: int) -> dict:
    core = make_core(home, FIRST_LINE, workdir)
    runs = core.runs
    await core.start()
    marks: dict[str, float] = {}
    runs.subscribe_state(
        lambda st: (
            marks.setdefault("running", time.perf_counter()) if str(st.state) == "running" else None
        )
    )
    runs.subscribe_output(
        lambda lines: (
            marks.setdefault("line", time.perf_counter())
            if any(x == "ready" for x in lines)
            else None
        )
    )
    t = {k: [] for k in ("popen_spawn", "popen_first_line", "ours_spawn", "ours_first_line")}
    for r in range(rounds):
        s = time.perf_counter()
        p = subprocess.Popen(
            FIRST_LINE, stdout=subprocess.PIPE, cwd=workdir, start_new_session=True
        )
        t["popen_spawn"].append(time.perf_counter() - s)
        p.stdout.readline()
        t["popen_first_line"].append(time.perf_counter() - s)
        p.wait()
        p.stdout.close()

        marks.clear()
        s = time.perf_counter()
        result = runs.process_now("bench")
        await result.wait()
        t["ours_spawn"].append(marks["running"] - s)
        t["ours_first_line"].append(marks["line"] - s)
        print(
            f"round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1] * 1000:.1f} ms" for k, v in t.items()),
            flush=True,
        )
    await core.stop()
    return t


async def ticker(stop: asyncio.Event, period: float = 0.005) -> list[float]:
    lateness = []
    while not stop.is_set():
        s = time.perf_counter()
        await asyncio.sleep(period)
        lateness.append(time.perf_counter() - s - period)
    return lateness


async def bench_stall(home: Path, workdir: Path, command: list[str], seconds: float) -> dict:
    core = make_core(home, command, workdir)
    await core.start()
    lines = [0]
    core.runs.subscribe_output(lambda b: lines.__setitem__(0, lines[0] + len(b)))
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stop))
    s = time.perf_counter()
    record = await core.runs.process_now("bench").wait()
    took = time.perf_counter() - s
    stop.set()
    late = await tick
    await core.stop()
    assert record.outcome.ok, record
    return {
        "lines": lines[0],
        "seconds": round(took, 2),
        "lines_per_s": round(lines[0] / took),
        "worst_stall_ms": round(max(late) * 1000, 2),
        "p99_stall_ms": pct_ms(late, 0.99),
    }


async def bench_idle(seconds: float) -> dict:
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stop))
    await asyncio.sleep(seconds)
    stop.set()
    late = await tick
    return {"worst_stall_ms": round(max(late) * 1000, 2), "p99_stall_ms": pct_ms(late, 0.99)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--flood-mb", type=int, default=100)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flt-bench-runs-"))
    home = work / "home"
    fl = work / "FamilyLog"
    fl.mkdir()
    (fl / "rate.py").write_text(RATE_SCRIPT)
    os.environ["FAMILYLOG_TRAY_HOME"] = str(home)

    t = await bench_start(home, fl, args.rounds)
    m = {k: median_ms(v) for k, v in t.items()}
    p95 = {k: pct_ms(v, 0.95) for k, v in t.items()}

    idle = await bench_idle(args.seconds)
    rate_cmd = [sys.executable, str(fl / "rate.py"), "5000", str(args.seconds)]
    rate = await bench_stall(home, fl, rate_cmd, args.seconds)
    flood_cmd = [
        sys.executable,
        str(Path(__file__).resolve().parent.parent / "tests/support/familylog_standin/run.py"),
        "flood",
        str(args.flood_mb),
    ]
    flood = await bench_stall(home, fl, flood_cmd, 0)

    res = {
        "rounds": args.rounds,
        "start_median_ms": m,
        "start_p95_ms": p95,
        "start_overhead_vs_popen_ms": round(m["ours_spawn"] - m["popen_spawn"], 2),
        "first_line_overhead_vs_popen_ms": round(m["ours_first_line"] - m["popen_first_line"], 2),
        "stall_idle": idle,
        "stall_5000_lines_per_s": rate,
        f"stall_flood_{args.flood_mb}mb": flood,
        "targets": {"start_ms_max": 100, "stall_ms_max": 50},
    }
    res["targets_met"] = m["ours_spawn"] < 100 and rate["worst_stall_ms"] < 50
    print("\nstart, medians (p95) in ms:")
    for k in t:
        print(f"  {k:16s} {m[k]:8.2f} ({p95[k]:.2f})")
    print(f"Process now -> child running: {m['ours_spawn']:.2f} ms (target < 100)")
    print(f"  overhead vs raw Popen spawn: {res['start_overhead_vs_popen_ms']:+.2f} ms")
    print(f"  first line, overhead vs raw Popen: {res['first_line_overhead_vs_popen_ms']:+.2f} ms")
    print(
        f"loop stall, idle:            worst {idle['worst_stall_ms']} ms, p99 {idle['p99_stall_ms']}"
    )
    print(
        f"loop stall, 5,000 lines/s:   worst {rate['worst_stall_ms']} ms, "
        f"p99 {rate['p99_stall_ms']} ms ({rate['lines']} lines, {rate['lines_per_s']}/s)"
        " (target < 50)"
    )
    print(
        f"loop stall, {args.flood_mb} MB flood:   worst {flood['worst_stall_ms']} ms, "
        f"p99 {flood['p99_stall_ms']} ms ({flood['lines']} lines in {flood['seconds']} s)"
    )
    print(f"targets met: {res['targets_met']}")
    save("runs", res, measures=MEASURES)


if __name__ == "__main__":
    asyncio.run(main())
