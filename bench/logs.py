"""Benchmark the log window under a log flood (offscreen Qt, qasync, a writer process).

    uv run python bench/logs.py [--rate 20000] [--seconds 10]

A separate process appends ``--rate`` lines per second (each starting with its write time)
to a llama-server log that the open LogWindow follows. Measured in the same run:

- the UI loop's worst stall: the largest lateness of a 5 ms QTimer, while idle (the
  baseline: window open, nothing written) and during the flood;
- write → shown delay per line: the time from the writer's timestamp to the chunk that
  holds the line being inserted into the view (p50/p95/max), against a baseline of the
  bare follower (no Qt view) reading the same kind of flood;
- the process's memory (RSS) after the first second of the flood and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from common import pct_ms  # noqa: E402
from results import save  # noqa: E402

# The code this benchmark measures, following log files and the log window: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = ["app/core/logs", "app/ui/log_window.py", "app/ui/log_view.py"]

WRITER = textwrap.dedent(
    """
    import os, sys, time
    path, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pad = "x" * 40
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.time()
    seq = 0
    while True:
        now = time.time()
        if now - start >= seconds:
            break
        due = int((now - start) * rate) + per_tick
        lines = []
        while seq < due:
            mark = "W" if seq % 100 == 0 else "I"
            lines.append(f"{time.time():.6f} {mark} srv  bench: line {seq} {pad}\\n")
            seq += 1
        os.write(fd, "".join(lines).encode())
        time.sleep(max(0.0, start + (seq / rate) - time.time()))
    os.close(fd)
    print(seq)
    """
)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class StallMeter:
    """A 5 ms QTimer; its lateness is how long the UI loop was blocked."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000
        self.timer = QTimer(interval=interval_ms)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.worst = max(self.worst, now - self.last - self.interval)
        self.last = now

    def start(self) -> None:
        self.last, self.worst = 0.0, 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


class HandlerTimes:
    """Worst wall and CPU (thread) time of the view's own handlers: CPU time excludes the
    time the OS gave to other processes, so it shows what the code itself costs."""

    def __init__(self) -> None:
        from app.ui import log_view

        self.worst: dict[str, list[float]] = {}
        cls = log_view.LogView
        for name in ("add_lines", "_flush", "paintEvent"):
            self._wrap(cls, name)

    def _wrap(self, cls, name: str) -> None:
        orig = getattr(cls, name)
        worst = self.worst.setdefault(name, [0.0, 0.0])

        def timed(view, *a, **k):
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return orig(view, *a, **k)
            finally:
                worst[0] = max(worst[0], time.perf_counter() - w0)
                worst[1] = max(worst[1], time.thread_time() - c0)

        setattr(cls, name, timed)

    def reset(self) -> None:
        for w in self.worst.values():
            w[0] = w[1] = 0.0

    def report(self) -> dict:
        return {
            k: {"wall_ms": round(w * 1000, 2), "cpu_ms": round(c * 1000, 2)}
            for k, (w, c) in self.worst.items()
        }


def start_writer(path: Path, rate: int, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(rate), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )


async def wait_proc(p: subprocess.Popen) -> int:
    while p.poll() is None:
        await asyncio.sleep(0.05)
    return int(p.stdout.read().strip() or 0)


def delays_of(lines: list[str], now: float, out: list[float]) -> None:
    for line in lines:
        head = line.split(" ", 1)[0]
        if len(head) == 17 and head[10] == ".":  # the writer's "1712345678.123456"
            out.append(now - float(head))


async def follower_baseline(work: Path, rate: int, seconds: float) -> dict:
    from app.core.logs.log_follow import start_follow

    path = work / "baseline.log"
    path.write_text("")
    delays: list[float] = []
    h = start_follow(path, lambda b: delays_of(b, time.time(), delays))
    writer = start_writer(path, rate, seconds)
    written = await wait_proc(writer)
    deadline = time.monotonic() + 10
    while len(delays) < written and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await h.wait_stopped()
    return {
        "lines": len(delays),
        "delay_p50_ms": pct_ms(delays, 0.5),
        "delay_p95_ms": pct_ms(delays, 0.95),
        "delay_max_ms": pct_ms(delays, 1.0),
    }


async def run(args: argparse.Namespace, work: Path) -> dict:
    from app.core.app_core import AppCore
    from app.paths import AppPaths
    from app.settings_load import load_settings
    from app.ui.log_window import LogWindow

    os.environ["FAMILYLOG_TRAY_HOME"] = str(work / "home")
    paths = AppPaths.resolve().ensure()
    settings = load_settings(paths)
    core = AppCore(settings, paths)
    port = 18080
    log_path = paths.server_log(port)
    log_path.write_text("0.00.000.001 I srv  llama_server: an earlier line\n")

    print(f"baseline: bare follower, {args.rate} lines/s for {args.baseline_seconds:g} s")
    base = await follower_baseline(work, args.rate, args.baseline_seconds)
    print(f"  {base}")

    handlers = HandlerTimes()
    window = LogWindow(core, paths, settings.LOG_VIEW_MAX_LINES)
    window.resize(1100, 700)
    window.show()
    window.select(port)
    view = window.panes[port].view
    delays: list[float] = []
    shown = 0

    def on_shown(lines: list[str]) -> None:
        nonlocal shown
        shown += len(lines)
        delays_of(lines, time.time(), delays)

    view.linesShown.connect(on_shown)
    meter = StallMeter()
    await asyncio.sleep(0.5)

    print(f"idle: window open, nothing written, {args.idle_seconds:g} s")
    meter.start()
    await asyncio.sleep(args.idle_seconds)
    idle_stall = meter.stop()
    rss_idle = rss_mb()

    print(f"flood: {args.rate} lines/s for {args.seconds:g} s")
    delays.clear()
    shown = 0
    handlers.reset()
    cpu0 = time.process_time()
    meter.start()
    writer = start_writer(log_path, args.rate, args.seconds)
    t0 = time.monotonic()
    await asyncio.sleep(1.0)
    gc.collect()
    rss_1s = rss_mb()
    rss_peak = rss_1s
    while writer.poll() is None:
        await asyncio.sleep(0.25)
        rss_peak = max(rss_peak, rss_mb())
    written = await wait_proc(writer)
    deadline = time.monotonic() + 20
    while (shown < written or view.pending) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    flood_s = time.monotonic() - t0
    flood_stall = meter.stop()
    cpu = time.process_time() - cpu0
    gc.collect()
    rss_end = rss_mb()
    window.close()
    await asyncio.sleep(0.3)

    result = {
        "rate_lines_per_s": args.rate,
        "seconds": args.seconds,
        "lines_written": written,
        "lines_shown": shown,
        "lines_in_view": view.shown_count,
        "view_cap": view.max_lines,
        "stall_idle_ms": round(idle_stall * 1000, 2),
        "stall_flood_ms": round(flood_stall * 1000, 2),
        "delay_p50_ms": pct_ms(delays, 0.5),
        "delay_p95_ms": pct_ms(delays, 0.95),
        "delay_max_ms": pct_ms(delays, 1.0),
        "follower_only": base,
        "rss_idle_mb": round(rss_idle, 1),
        "rss_after_1s_mb": round(rss_1s, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_1s, 1),
        "ui_process_cpu_pct": round(100 * cpu / flood_s, 1),
        "worst_handler": handlers.report(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--idle-seconds", type=float, default=2.0)
    ap.add_argument("--baseline-seconds", type=float, default=3.0)
    args = ap.parse_args()

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)  # as in the tray app
    work = Path(tempfile.mkdtemp(prefix="flt-bench-logs-"))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        r = loop.run_until_complete(run(args, work))

    print()
    print(f"{'measure':34} {'value':>10}  target")
    rows = [
        ("UI stall, idle (baseline) ms", r["stall_idle_ms"], ""),
        ("UI stall, worst during flood ms", r["stall_flood_ms"], "< 50"),
        *(
            (f"  worst {k} wall / CPU ms", f"{v['wall_ms']} / {v['cpu_ms']}", "")
            for k, v in r["worst_handler"].items()
        ),
        ("write→shown p50 ms", r["delay_p50_ms"], ""),
        ("write→shown p95 ms", r["delay_p95_ms"], "< 250"),
        ("write→shown max ms", r["delay_max_ms"], ""),
        ("follower only p95 ms (baseline)", r["follower_only"]["delay_p95_ms"], ""),
        ("RSS after 1 s MB", r["rss_after_1s_mb"], ""),
        ("RSS after run MB", r["rss_end_mb"], ""),
        ("RSS growth MB", r["rss_growth_mb"], "< 20"),
        ("UI process CPU %", r["ui_process_cpu_pct"], ""),
    ]
    for name, value, target in rows:
        print(f"{name:34} {value:>10}  {target}")
    print(
        f"lines written {r['lines_written']}, shown {r['lines_shown']}, "
        f"kept in view {r['lines_in_view']} (cap {r['view_cap']})"
    )
    print(f"machine: {r['cpus']} CPUs, load average {r['load_average']}")
    save("logs", r, measures=MEASURES)


if __name__ == "__main__":
    main()
