"""The tray's UI loop while a FamilyLog run prints 5,000 lines per second.

    uv run python bench/runs_ui.py [--seconds 5] [--rate 5000]

The real TrayApp (offscreen Qt, qasync) starts a run from its "Process now" action; the run
prints ``--rate`` lines a second for ``--seconds``, and the log window is open on the run
tab, following the run's log file. A 5 ms QTimer records how late each tick fires.
Baseline: the same timer on the same loop for the same time with no run. Target: worst
stall under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from common import StallMeter, median_ms, pct_ms
from results import save

# The code this benchmark measures, a run's output into the tray and the log window: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = ["app/core/runs", "app/ui/log_window.py", "app/ui/log_view.py", "app/ui/tray_app.py"]

TICK_MS = 5
PRINTER = (
    "import sys, time\n"
    "rate, secs = int(sys.argv[1]), float(sys.argv[2])\n"
    "t0 = time.monotonic(); n = 0\n"
    "while time.monotonic() - t0 < secs:\n"
    "    due = int((time.monotonic() - t0) * rate)\n"
    "    while n < due:\n"
    "        print(f'{time.time():.6f} line {n} of the FamilyLog stand-in, some text to read')\n"
    "        n += 1\n"
    "    sys.stdout.flush(); time.sleep(0.002)\n"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=5000)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="flt-bench-runs-ui-"))
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ["FAMILYLOG_TRAY_HOME"] = str(home / "home")
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.core.bootstrap import build_core
    from app.core.settings.settings_file import update_settings_file
    from app.paths import AppPaths
    from app.settings_load import load_settings
    from app.ui.tray_app import TrayApp

    fl = home / "FamilyLog"
    fl.mkdir()
    (fl / "printer.py").write_text(PRINTER)
    paths = AppPaths.resolve().ensure()
    cmd = shlex.join([sys.executable, "printer.py", str(args.rate), str(args.seconds)])
    update_settings_file(
        paths.settings_file,
        {"FAMILYLOG_DIR": str(fl), "FAMILYLOG_COMMAND": cmd, "API_ENABLED": "false"},
    )
    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    meter = StallMeter(TICK_MS)

    async def measure(seconds: float | None, tray: TrayApp | None) -> tuple[list[float], float]:
        meter.start()
        t0 = time.perf_counter()
        if tray is None:
            await asyncio.sleep(seconds or 0)
        else:
            tray.menu.rebuild()
            tray.menu.act_process_now.trigger()
            while not tray.core.runs.status().busy:
                await asyncio.sleep(0.01)
            await tray.core.runs.wait()
        busy = meter.stop()
        return busy, time.perf_counter() - t0

    async def run() -> dict:
        core = build_core(load_settings(paths), paths)
        tray = TrayApp(core, paths)
        await tray.start(show_tray=False, load_at_start=False)
        tray.logs.open("run")
        await asyncio.sleep(1)
        busy, secs = await measure(None, tray)
        record = core.runs.recent_runs(1)[0]
        pane = tray.logs.window.panes["run"]
        await asyncio.sleep(1)  # let the follower catch up with the file
        shown = pane.view.toPlainText().count(" of the FamilyLog stand-in")
        idle, _ = await measure(secs, None)
        await tray.shutdown()
        return {
            "rate_lines_per_s": args.rate,
            "seconds": round(secs, 2),
            "outcome": str(record.outcome),
            "lines_in_view": shown,
            "ticks": len(busy),
            "worst_ms": round(max(busy) * 1000, 2),
            "p99_ms": pct_ms(busy, 0.99),
            "median_ms": median_ms(busy),
            "baseline_worst_ms": round(max(idle) * 1000, 2),
            "baseline_p99_ms": pct_ms(idle, 0.99),
            "target_worst_ms": 50,
        }

    with loop:
        res = loop.run_until_complete(run())
    res["target_met"] = res["worst_ms"] < 50
    print(
        f"UI loop during a run printing {args.rate} lines/s for {res['seconds']} s "
        f"(log window open on the run tab, {res['lines_in_view']} lines in view, "
        f"outcome {res['outcome']}):\n"
        f"  worst stall {res['worst_ms']} ms (idle baseline {res['baseline_worst_ms']} ms), "
        f"p99 {res['p99_ms']} ms (baseline {res['baseline_p99_ms']} ms)  target < 50 ms\n"
        f"  target met: {res['target_met']}"
    )
    save("runs_ui", res, measures=MEASURES)


if __name__ == "__main__":
    main()
