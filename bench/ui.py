"""Benchmark the tray UI: event-loop stalls while models load, switch and unload, and the
idle cost of the tray app.

    uv run python bench/ui.py [--rounds 10] [--idle-seconds 30]

(a) stall: a 5 ms QTimer on the qasync loop records how late each tick fires while the
    real core loads the tiny model, switches the single port to another and unloads all,
    with the models window open (so the GPU probe and the table refresh run too).
    Baseline: the same timer on the same loop for the same time with nothing happening.
(b) idle: ``python -m app.main`` (under Xvfb + trayer when available, so the tray icon is
    real) for ``--idle-seconds`` after start-up: CPU time used and RSS at the end.
    Baseline: a bare QApplication + qasync loop doing nothing, measured the same way.
Targets: worst stall < 30 ms; idle CPU < 1 % of one core; RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    ROOT,
    StallMeter,
    free_port,
    llama_server_bin,
    median_ms,
    pct_ms,
    tiny_models,
)
from results import save

# The code this benchmark measures, the tray and its windows, what they show, the lifecycle they drive, the GPU probes: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = [
    "app/ui",
    "app/core/summary.py",
    "app/core/tray_state.py",
    "app/core/model_rows.py",
    "app/core/lifecycle",
    "app/core/gpu",
    "app/core/long_lived.py",
]

TICK_MS = 5


# ── (a) stalls ────────────────────────────────────────────────────────────────
def measure_stalls(rounds: int, home: Path) -> dict:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ["FAMILYLOG_TRAY_HOME"] = str(home)
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.core.bootstrap import build_core
    from app.core.long_lived import freeze_long_lived
    from app.core.models.entry import LLM, VISION
    from app.core.settings.settings_file import update_settings_file
    from app.paths import AppPaths
    from app.settings_load import load_settings
    from app.ui.tray_app import TrayApp

    model_a, model_b = tiny_models(home / "models")
    paths = AppPaths.resolve().ensure()
    update_settings_file(
        paths.settings_file,
        {
            "LLAMA_SERVER_PATH": llama_server_bin(),
            "LLM_MODEL_GGUF": str(model_a),
            "VISION_MODEL_GGUF": str(model_b),
            "LLAMA_LLM_PORT": str(free_port()),
            "LLAMA_VISION_PORT": str(free_port()),
            "LLAMA_PORT": str(free_port()),
            "LLAMA_CTX_SIZE": "512",
            "API_ENABLED": "false",
            "RUN_MODE": "switch",
        },
    )
    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    meter = StallMeter(TICK_MS)

    async def run() -> dict:
        core = build_core(load_settings(paths), paths)
        tray = TrayApp(core, paths)
        await tray.start(show_tray=False, load_at_start=False)
        freeze_long_lived()  # as TrayApp.run does after its start
        tray.show_models()
        await asyncio.sleep(1)
        meter.start()
        t0 = time.perf_counter()
        llm, vision = core.catalogue.role(LLM).key, core.catalogue.role(VISION).key
        for _ in range(rounds):  # as the tray's menu does it; switch mode: one port swaps
            await tray.load(llm)
            await tray.load(vision)
            await tray.load(llm)
            await tray.unload_all()
        busy_s = time.perf_counter() - t0
        busy = meter.stop()
        await asyncio.sleep(0.2)
        meter.start()
        await asyncio.sleep(busy_s)  # the baseline: the same loop, nothing happening
        idle = meter.stop()
        await tray.shutdown()
        return {
            "rounds": rounds,
            "seconds": round(busy_s, 2),
            "ticks": len(busy),
            "worst_ms": round(max(busy) * 1000, 2),
            "p99_ms": pct_ms(busy, 0.99),
            "median_ms": median_ms(busy),
            "baseline_worst_ms": round(max(idle) * 1000, 2),
            "baseline_p99_ms": pct_ms(idle, 0.99),
            "baseline_median_ms": median_ms(idle),
        }

    with loop:
        return loop.run_until_complete(run())


# ── (b) idle cost ─────────────────────────────────────────────────────────────
BARE = (
    "import asyncio, qasync\n"
    "from PySide6.QtWidgets import QApplication\n"
    "app = QApplication([])\n"
    "app.setQuitOnLastWindowClosed(False)\n"
    "loop = qasync.QEventLoop(app)\n"
    "asyncio.set_event_loop(loop)\n"
    "with loop:\n"
    "    loop.run_forever()\n"
)


def _x_server() -> tuple[dict[str, str], list[subprocess.Popen]] | None:
    if not all(shutil.which(t) for t in ("Xvfb", "trayer")):
        return None
    r, w = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x700x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        display = ":" + f.readline().strip()
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    trayer = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # bench only: let trayer claim the tray selection
    return env, [trayer, xvfb]


def _measure_process(cmd: list[str], env: dict[str, str], ready, seconds: float) -> dict:
    import psutil

    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # let start-up work settle
        p = psutil.Process(proc.pid)
        c0, t0 = p.cpu_times(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = p.cpu_times(), time.monotonic()
        rss = p.memory_info().rss
        cpu = (c1.user - c0.user + c1.system - c0.system) / (t1 - t0)
        return {"cpu_pct_of_core": round(cpu * 100, 3), "rss_mb": round(rss / 1e6, 1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_idle(seconds: float, home: Path) -> dict:
    x = _x_server()
    try:
        env = dict(x[0]) if x else {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        env["FAMILYLOG_TRAY_HOME"] = str(home / "idle-home")
        env["API_ENABLED"] = "false"
        log = home / "idle-home" / "logs" / "familylog-tray.log"

        def tray_ready() -> bool:
            return log.is_file() and (
                "Tray icon shown" in log.read_text() or not x  # offscreen: no tray to wait for
            )

        app = _measure_process([sys.executable, "-m", "app.main"], env, tray_ready, seconds)
        bare = _measure_process([sys.executable, "-c", BARE], env, lambda: True, seconds)
        return {
            "display": "Xvfb + trayer" if x else "offscreen (no tray host found)",
            "seconds": seconds,
            "app": app,
            "bare_qt_qasync": bare,
        }
    finally:
        for p in x[1] if x else []:
            p.terminate()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        home = Path(tmp)
        idle = measure_idle(args.idle_seconds, home)
        stalls = measure_stalls(args.rounds, home / "stall-home")
    print(
        f"UI loop while loading/switching/unloading ({stalls['rounds']} rounds, "
        f"{stalls['seconds']} s, {stalls['ticks']} ticks of {TICK_MS} ms):"
    )
    print(
        f"  worst stall  {stalls['worst_ms']:8.2f} ms   (idle baseline {stalls['baseline_worst_ms']} ms)  target < 30 ms"
    )
    print(
        f"  p99 lateness {stalls['p99_ms']:8.2f} ms   (idle baseline {stalls['baseline_p99_ms']} ms)"
    )
    print(
        f"  median       {stalls['median_ms']:8.2f} ms   (idle baseline {stalls['baseline_median_ms']} ms)"
    )
    a, b = idle["app"], idle["bare_qt_qasync"]
    print(f"Idle over {idle['seconds']:g} s, tray only ({idle['display']}):")
    print(
        f"  CPU  {a['cpu_pct_of_core']:6.3f} % of a core   (bare Qt+qasync {b['cpu_pct_of_core']} %)  target < 1 %"
    )
    print(
        f"  RSS  {a['rss_mb']:6.1f} MB              (bare Qt+qasync {b['rss_mb']} MB)  target < 150 MB"
    )
    save("ui", {"stalls": stalls, "idle": idle}, measures=MEASURES)


if __name__ == "__main__":
    main()
