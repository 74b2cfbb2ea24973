"""What the tray's tooltip costs per reply, before and after it was coalesced.

    uv run python bench/tooltip.py [--rounds 300]

A real TrayApp (its icon in trayer's panel on Xvfb when both are installed, else offscreen)
with both tiny models loaded, so the tooltip has its real lines (state, memory, speed). Each
round feeds one reply's timings into the speed statistics, as the API's proxy does:
- ``redraw``: the tooltip built and set, what every reply cost before (``_render_state``);
- ``per_reply``: what a reply costs the UI now (the listeners; the redraw waits for the
  coalescing timer), interleaved with ``redraw``;
- ``burst``: 200 replies in one second on the running loop, and the redraws they cause.
Prints the medians; saves bench/results/tooltip.json (bench/results.py).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import free_port, llama_server_bin, tiny_models  # noqa: E402
from bench.results import save  # noqa: E402

# The code this benchmark measures, what a reply costs the tray and the models window: its
# figures (bench/results/) go stale when one of these files changes.
MEASURES = ["app/ui/tray_app.py", "app/ui/models_window.py", "app/core/models/stats.py"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flt-tooltip-"))
    display = None
    if shutil.which("Xvfb") and shutil.which("trayer"):
        from bench.startup import start_display

        *display, env = start_display()
        os.environ.update(DISPLAY=env["DISPLAY"], QT_QPA_PLATFORM="xcb")
    else:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ["FAMILYLOG_TRAY_HOME"] = str(tmp / "home")
    try:
        res = run(args.rounds, tmp)
    finally:
        for p in display or []:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    res.update(platform=os.environ["QT_QPA_PLATFORM"])
    print(
        f"tooltip redraw (before: every reply): {res['redraw_ms']:.3f} ms median\n"
        f"UI cost per reply now: {res['per_reply_ms']:.3f} ms median "
        f"({res['per_reply_ms'] / res['redraw_ms']:.2f}x)\n"
        f"a burst of {res['burst_replies']} replies in 1 s: {res['burst_redraws']} redraws"
    )
    save("tooltip", res, measures=MEASURES)


def run(rounds: int, tmp: Path) -> dict:
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.core.bootstrap import build_core
    from app.core.models.stats import Sample
    from app.core.settings.settings_file import update_settings_file
    from app.paths import AppPaths
    from app.settings_load import load_settings
    from app.ui.tray_app import TrayApp

    a, b = tiny_models(tmp / "models")
    paths = AppPaths.resolve().ensure()
    update_settings_file(
        paths.settings_file,
        {"LLAMA_SERVER_PATH": llama_server_bin(), "LLM_MODEL_GGUF": str(a),
         "VISION_MODEL_GGUF": str(b), "LLAMA_LLM_PORT": str(free_port()),
         "LLAMA_VISION_PORT": str(free_port()), "LLAMA_CTX_SIZE": "512",
         "RUN_MODE": "parallel", "API_ENABLED": "false"},
    )  # fmt: skip
    qt = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(qt)
    asyncio.set_event_loop(loop)

    async def go() -> dict:
        core = build_core(load_settings(paths), paths)
        app = TrayApp(core, paths)
        await app.start(load_at_start=False)
        try:
            keys = [e.key for e in core.catalogue.roles().values()]
            for key in keys:
                await core.lifecycle.ensure(key)
            draws = 0
            real = app._render_state

            def counted() -> None:
                nonlocal draws
                draws += 1
                real()

            app._render_state = counted
            redraw, per_reply = [], []
            for i in range(rounds):
                sample = Sample(time.time(), 30, 12.0, 20 + i % 7, 100.0 + i % 13)
                order = ("redraw", "reply") if i % 2 == 0 else ("reply", "redraw")
                for what in order:
                    s = time.perf_counter()
                    if what == "redraw":
                        real()
                        redraw.append(time.perf_counter() - s)
                    else:
                        core.stats.record(keys[i % 2], sample)
                        per_reply.append(time.perf_counter() - s)
                await asyncio.sleep(0)
            await asyncio.sleep(0.5)
            draws = 0
            start = time.perf_counter()
            for i in range(200):
                core.stats.record(keys[i % 2], Sample(time.time(), 30, 12.0, 25, 110.0))
                await asyncio.sleep(max(0.0, start + (i + 1) / 200 - time.perf_counter()))
            await asyncio.sleep(0.5)  # the last redraw
            return {
                "rounds": rounds,
                "loaded_models": len(keys),
                "redraw_ms": round(statistics.median(redraw) * 1000, 4),
                "per_reply_ms": round(statistics.median(per_reply) * 1000, 4),
                "burst_replies": 200,
                "burst_redraws": draws,
            }
        finally:
            await app.shutdown()

    with loop:
        return loop.run_until_complete(go())


if __name__ == "__main__":
    main()
