"""Issue #22's abuse probes against ``familylog-tray --headless``, side by side for one or
more checkouts (the app is imported from each), so a fix is shown against its baseline.

Each probe is bounded in count and time and targets loopback only: 64 stalled bodies
then a normal request; keyless stalls; 60,000 JSON keys and NaN through a loaded model;
undecodable ``Authorization``; llama-server's port without its key; ``Origin: null``; a
1 MB model name; malformed HTTP and the log it leaves; a silent connection; eight 1 MB
gzip bodies that inflate to 1 GiB each, with a request meanwhile and the peak memory
(Linux ``VmHWM``); 1,100 idle connections against an app held to 1,024 open files.

    uv run python bench/abuse.py [CHECKOUT ...]   # default: this checkout

A CHECKOUT is a folder, or a commit (its tree is unpacked to a temporary folder with ``git
archive``), e.g. ``uv run python bench/abuse.py 1967087 .``: main before #22's fix, and this
checkout. Saves bench/results/abuse.json: each checkout's probes and its commit; the
freshness check follows this checkout (the files in MEASURES).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, free_port, llama_server_bin, tiny_models  # noqa: E402
from bench.results import git, save  # noqa: E402
from tests.api.test_abuse import gzip_bomb, peak_rss  # noqa: E402

# The code this benchmark measures, the API's guard, limits and refusals (the checkout "."):
# its figures (bench/results/abuse.json) go stale when one of these files changes.
MEASURES = [
    "app/core/api/guard.py",
    "app/core/api/bodies.py",
    "app/core/api/connections.py",
    "app/core/api/refusals.py",
    "app/core/api/server.py",
    "app/core/api/common.py",
    "app/core/servers/keys.py",
    "app/platform/open_files.py",
]

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class App:
    """``--headless`` from ``checkout``, on free ports, with its own home."""

    def __init__(self, checkout: Path, model: Path, limit_files: int | None = None, **env):
        self.home = Path(tempfile.mkdtemp(prefix="flt-abuse-"))
        self.port, self.llm_port = free_port(), free_port()
        values = {
            "FAMILYLOG_TRAY_HOME": str(self.home),
            "PYTHONPATH": str(checkout),
            "LLAMA_SERVER_PATH": llama_server_bin(),
            "LLM_MODEL_GGUF": str(model),
            "LLM_MODEL_ID": "m",
            "LLAMA_LLM_PORT": str(self.llm_port),
            "LLAMA_CTX_SIZE": "512",
            "API_PORT": str(self.port),
            **{k: str(v) for k, v in env.items()},
        }

        def limit() -> None:
            if limit_files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit_files, limit_files))

        self.p = subprocess.Popen(
            [sys.executable, "-m", "app.main", "--headless"],
            cwd=checkout,
            env={**os.environ, **values},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=limit,
        )
        assert "running headless" in self.p.stdout.readline()
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        f = self.home / "logs" / "familylog-tray.log"
        return f.read_text() if f.exists() else ""

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def timed(call):
    start = time.monotonic()
    try:
        out = call()
        out = getattr(out, "status_code", out)
    except Exception as e:  # noqa: BLE001 - a timeout is a result here
        out = type(e).__name__
    return out, round(time.monotonic() - start, 3)


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``; the first whole answer (by Content-Length), or what came by then."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                head, sep, body = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n") if sep else ():
                    length = line.lower().startswith(b"content-length:")
                    if length and len(body) >= int(line.split(b":")[1]):
                        return out
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def probes(checkout: Path, model: Path) -> dict:
    out: dict = {}
    app = App(checkout, model, API_KEY=KEY)
    try:
        c = httpx.Client(base_url=app.base, headers=AUTH, timeout=60, trust_env=False)
        c.get("/api/v1/models")
        stall = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
            f"Authorization: Bearer {KEY}\r\n\r\n{{"
        ).encode()
        held = [socket.create_connection(("127.0.0.1", app.port)) for _ in range(64)]
        for s in held:
            s.sendall(stall)
        time.sleep(1.0)
        out["64 stalls, then GET (status, s)"] = timed(lambda: c.get("/api/v1/models", timeout=15))
        for s in held:
            s.close()
        keyless = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
        )
        start = time.monotonic()
        first = {raw(app.port, keyless, timeout=3)[:12].decode() or "no answer" for _ in range(4)}
        out["keyless stall x4 (answers, s)"] = (sorted(first), round(time.monotonic() - start, 2))

        c.post("/api/v1/models/load", json={"model": "m"})
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        wide = json.dumps({**chat, **{f"k{i}": 1 for i in range(60_000)}}).encode()
        out["60,000 keys (status, s)"] = timed(
            lambda: c.post("/v1/chat/completions", content=wide, timeout=120)
        )
        nan = json.dumps(chat)[:-1] + ', "temperature": NaN}'
        out["NaN (status)"] = timed(lambda: c.post("/v1/chat/completions", content=nan))[0]
        bad = (
            b"GET /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\r\n\r\n"
        )
        out["bad Authorization bytes"] = raw(app.port, bad)[9:12].decode()

        page = {"Origin": "http://evil.example"}
        with httpx.Client(base_url=f"http://127.0.0.1:{app.llm_port}", trust_env=False) as d:
            for path in ("/v1/models", "/models"):
                r = d.get(path, headers=page)
                out[f"llama-server {path} without key"] = (
                    r.status_code,
                    r.headers.get("access-control-allow-origin"),
                )
            r = d.options(
                "/v1/chat/completions", headers={**page, "Access-Control-Request-Method": "POST"}
            )
            out["llama-server preflight credentials"] = r.headers.get(
                "access-control-allow-credentials"
            )
        r = c.get("/api/v1/models", headers={"Origin": "null"})
        out["Origin: null suggests allowing it"] = "API_CORS_ORIGINS=null" in r.text
        r = c.post("/api/v1/models/load", json={"model": "m" * (1 << 20)})
        out["1 MB model name: answer bytes"] = len(r.content)

        before = len(app.log)
        answers = [raw(app.port, b"GET / HTTP/9.9\r\n\r\n") for _ in range(10)]
        for _ in range(10):
            c.get("/api/v1/models", headers={"Host": "evil.example"})
        time.sleep(0.3)
        logged = app.log[before:]
        ctype = [x for x in answers[0].split(b"\r\n") if x.lower().startswith(b"content-type")]
        out["malformed HTTP x10: content type"] = ctype[0].decode()[14:] if ctype else None
        out["x10 malformed + x10 bad Host: log (bytes, tracebacks, lines)"] = (
            len(logged),
            logged.count("Traceback"),
            logged.count("\n"),
        )
        with socket.create_connection(("127.0.0.1", app.port)) as s:
            s.settimeout(15)
            start = time.monotonic()
            try:
                s.recv(100)
                out["silent connection closed after (s)"] = round(time.monotonic() - start, 1)
            except TimeoutError:
                out["silent connection closed after (s)"] = "still open at 15"

        bomb = gzip_bomb()
        peak = peak_rss(app.p.pid)

        async def bombs():
            async with httpx.AsyncClient(
                base_url=app.base, headers=AUTH, timeout=120, trust_env=False
            ) as ac:
                gz = {"Content-Encoding": "gzip"}
                sent = [
                    asyncio.create_task(ac.post("/v1/chat/completions", content=bomb, headers=gz))
                    for _ in range(8)
                ]
                await asyncio.sleep(0.05)
                start = time.monotonic()
                await ac.get("/api/v1/models")
                took = time.monotonic() - start
                answers = await asyncio.gather(*sent, return_exceptions=True)
                return took, {getattr(a, "status_code", type(a).__name__) for a in answers}

        took, statuses = asyncio.run(bombs())
        out["8 gzip bombs: GET meanwhile (s)"] = round(took, 2)
        out["8 gzip bombs: answers"] = sorted(map(str, statuses))
        out["8 gzip bombs: peak memory growth (MiB)"] = (peak_rss(app.p.pid) - peak) >> 20
    finally:
        app.stop()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    app = App(checkout, model, limit_files=1024, API_MAX_OPEN_CONNECTIONS=100_000)
    socks = []
    try:
        for _ in range(1100):
            try:
                socks.append(socket.create_connection(("127.0.0.1", app.port), timeout=5))
            except OSError:
                break
        time.sleep(1)
        out["1,100 idle under 1,024 files: new client (status, s)"] = timed(
            lambda: httpx.get(f"{app.base}/api/v1/models", timeout=10, trust_env=False)
        )
        out["1,100 idle: app descriptors"] = psutil.Process(app.p.pid).num_fds()
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        time.sleep(0.5)
        app.stop()
    out["1,100 idle: log (bytes, tracebacks)"] = (len(app.log), app.log.count("Traceback"))
    return out


@contextlib.contextmanager
def checkout(arg: str):
    """``(folder, commit)`` of a CHECKOUT argument: a folder as it is, or a commit's tree
    unpacked into a temporary folder (no worktree is registered)."""
    if Path(arg).is_dir():
        folder = Path(arg).resolve()
        yield folder, git("rev-parse", "HEAD", root=folder)
        return
    commit = git("rev-parse", "--verify", f"{arg}^{{commit}}")
    if commit is None:
        raise SystemExit(f"{arg}: neither a folder nor a commit of this repository")
    with tempfile.TemporaryDirectory(prefix="flt-abuse-tree-") as tmp:
        archive = subprocess.run(
            ["git", "archive", commit], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp), commit


def main() -> None:
    args = sys.argv[1:] or ["."]
    results = {}
    commits = {}
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = tiny_models(Path(tmp))
        for arg in args:
            with checkout(arg) as (folder, commit):
                results[arg] = probes(folder, model)
                commits[arg] = commit
    names = list(next(iter(results.values())))
    width = max(map(len, names))
    print(" " * width, *results, sep="  |  ")
    for name in names:
        print(name.ljust(width), *(results[c][name] for c in results), sep="  |  ")
    save(
        "abuse",
        {"checkouts": {arg: {"commit": commits[arg], "probes": results[arg]} for arg in args}},
        measures=MEASURES,
    )


if __name__ == "__main__":
    main()
