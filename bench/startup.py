"""Launch → tray icon, on a real X server (Xvfb) with a real tray host (trayer).

Each round starts ``familylog-tray`` (``python -m app.main``, settings already written, so no
first-run dialog) and, interleaved with it, a bare PySide6 program that shows one
``QSystemTrayIcon`` and nothing else (the baseline: Python + Qt + the tray protocol). The
time is from ``Popen`` to the moment the icon's window is embedded in trayer's panel
(``xwininfo -root -tree`` polled every few ms). RSS is read 3 s after the icon shows.
Both run with compiled bytecode, as an installed app does (a PyInstaller bundle or a
package carries it): one launch of each first, not timed, writes the ``.pyc`` files, even
where ``PYTHONDONTWRITEBYTECODE`` is set (as on the development machine); ``--no-bytecode``
measures without (every module compiled at every launch).
Prints medians and the ratio; saves bench/results/startup.json.

    uv run python bench/startup.py [--rounds 5] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import llama_server_bin, median_ms, tiny_models  # noqa: E402
from bench.results import save  # noqa: E402

# The code this benchmark measures, what runs between the launch and the tray icon: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = [
    "app/main.py",
    "app/ui/launch.py",
    "app/ui/tray_app.py",
    "app/config.py",
    "app/settings_load.py",
]

BARE = (
    "import sys\n"
    "from PySide6.QtGui import QIcon, QPixmap, QColor\n"
    "from PySide6.QtWidgets import QApplication, QSystemTrayIcon\n"
    "app = QApplication(sys.argv)\n"
    "app.setApplicationName('familylog-tray')\n"
    "pm = QPixmap(22, 22); pm.fill(QColor('green'))\n"
    "icon = QSystemTrayIcon(QIcon(pm)); icon.show()\n"
    "sys.exit(app.exec())\n"
)


def tree(env: dict[str, str]) -> str:
    return subprocess.run(
        ["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True, timeout=10
    ).stdout


def icon_in_panel(env: dict[str, str]) -> bool:
    """True once a familylog-tray window sits inside trayer's panel."""
    text = tree(env)
    lines = text.splitlines()
    panel = next((i for i, ln in enumerate(lines) if '("panel" "trayer")' in ln), None)
    if panel is None:
        return False
    depth = len(lines[panel]) - len(lines[panel].lstrip())
    for ln in lines[panel + 1 :]:
        d = len(ln) - len(ln.lstrip())
        if ln.strip() and d <= depth:
            return False
        if re.search(r'"familylog-tray"\)\s+\d+x\d+', ln):
            return True
    return False


def start_display() -> tuple[subprocess.Popen, subprocess.Popen, dict[str, str]]:
    r, w = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x700x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        env = {**os.environ, "DISPLAY": f":{f.readline().strip()}", "QT_QPA_PLATFORM": "xcb"}
    trayer = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
         "--height", "28", "--transparent", "false"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while '("panel" "trayer")' not in tree(env):
        if time.monotonic() > deadline:
            raise SystemExit("trayer did not start")
        time.sleep(0.05)
    return xvfb, trayer, env


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from launch to the icon in the panel, and RSS (bytes) 3 s later."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = t0 + 60
        while not icon_in_panel(env):
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise SystemExit(f"{argv}: no icon (exit {proc.poll()})")
            time.sleep(0.003)
        took = time.perf_counter() - t0
        time.sleep(3)
        rss = psutil.Process(proc.pid).memory_info().rss
        return took, rss
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # the icon must be gone before the next round measures its own
        deadline = time.monotonic() + 10
        while icon_in_panel(env) and time.monotonic() < deadline:
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-bytecode", action="store_true", help="compile every module each time")
    args = ap.parse_args()
    missing = [t for t in ("Xvfb", "trayer", "xwininfo") if not shutil.which(t)]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)} (.ci/run installs them)")
    tmp = Path(tempfile.mkdtemp(prefix="flt-startup-"))
    xvfb, trayer, env = start_display()
    try:
        home = tmp / "home"
        home.mkdir()
        vision, llm = tiny_models(tmp / "models")
        (home / "settings.env").write_text(
            f"LLAMA_SERVER_PATH={llama_server_bin()}\nLLM_MODEL_GGUF={llm}\n"
            f"VISION_MODEL_GGUF={vision}\nAPI_PORT=0\n"
        )
        env = {**env, "FAMILYLOG_TRAY_HOME": str(home), "HOME": str(tmp)}
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        app_argv = [sys.executable, "-m", "app.main"]
        bare_argv = [sys.executable, "-c", BARE]
        for argv in (app_argv, bare_argv):  # not timed: bytecode written, files in the cache
            measure(argv, env)
        app_t, app_rss, bare_t, bare_rss = [], [], [], []
        for i in range(args.rounds):
            pair = [(app_argv, app_t, app_rss), (bare_argv, bare_t, bare_rss)]
            for argv, ts, rs in pair if i % 2 == 0 else pair[::-1]:
                t, rss = measure(argv, env)
                ts.append(t)
                rs.append(rss)
        a, b = median_ms(app_t), median_ms(bare_t)
        ra = sorted(app_rss)[len(app_rss) // 2] / 2**20
        rb = sorted(bare_rss)[len(bare_rss) // 2] / 2**20
        how = "compiling every module" if args.no_bytecode else "with bytecode"
        print(f"launch -> icon in trayer, median of {args.rounds} (interleaved, {how}):")
        print(f"  bare PySide6 tray icon (baseline)  {b:7.1f} ms   RSS {rb:6.1f} MiB")
        print(
            f"  familylog-tray                     {a:7.1f} ms   RSS {ra:6.1f} MiB   "
            f"{a / b:4.2f}x  target < 400 ms: {'met' if a < 400 else 'MISSED'}"
        )
        figures = {
            "bytecode": not args.no_bytecode,
            "rounds": args.rounds,
            "app_ms": a,
            "bare_ms": b,
            "ratio": round(a / b, 2),
            "app_rss_mib": round(ra, 1),
            "bare_rss_mib": round(rb, 1),
            "app_all_ms": [round(t * 1000, 1) for t in app_t],
            "bare_all_ms": [round(t * 1000, 1) for t in bare_t],
        }
        save("startup", figures, measures=MEASURES)
    finally:
        for p in (trayer, xvfb):
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
