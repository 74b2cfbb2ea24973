"""Soak: many load/switch/unload cycles (and requests) through the app's core; does the
app leak memory, file descriptors, threads or processes, and does anything fail?

    uv run python bench/soak.py [--cycles 1000] [--requests 10000] [--direct]


One cycle (``RUN_MODE=switch``): load the LLM role's model on the single port, switch it
to the vision role's model, then back to the LLM's, then unload everything, all through the
lifecycle. Requests are chat completions with ``max_tokens=1`` naming the LLM role's key, sent through the app's API (the
one ``build_core`` attaches, on a free port; the model is loaded just in time by the
first request), or with ``--direct`` straight to llama-server.
RSS, open fds and threads of this process (the app) are printed at the start (after one
warm-up cycle), every 10 %, at the start of the request phase (after 100 warm-up
requests) and at the end; a leak shows as steady growth.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from common import free_port, llama_server_bin, median_ms, tiny_models
from results import save

from app.config import Settings
from app.core.bootstrap import build_core
from app.core.logs.app_logging import setup_logging
from app.core.models.entry import LLM, VISION
from app.core.servers.keys import auth_headers, server_url
from app.paths import AppPaths

# The code this benchmark measures, the whole core: cycles through the lifecycle, requests through the API: its figures (bench/results/)
# go stale when one of these files changes.
MEASURES = ["app/core", "app/platform/processes.py"]


def snapshot() -> dict:
    me = psutil.Process()
    kids = [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    return {
        "rss_mb": round(me.memory_info().rss / 2**20, 1),
        "fds": me.num_fds() if hasattr(me, "num_fds") else me.num_handles(),
        "threads": me.num_threads(),
        "children": len(kids),
    }


def show(label: str, s: dict) -> None:
    print(
        f"{label:>12}: RSS {s['rss_mb']:7.1f} MB  fds {s['fds']:4d}  "
        f"threads {s['threads']:3d}  children {s['children']}",
        flush=True,
    )


async def soak(args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix="flt-soak-"))
    os.environ["FAMILYLOG_TRAY_HOME"] = str(home)
    model_a, model_b = tiny_models(home / "models")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        LLAMA_SERVER_PATH=llama_server_bin(),
        LLM_MODEL_GGUF=str(model_a),
        VISION_MODEL_GGUF=str(model_b),
        LLAMA_LLM_PORT=free_port(),
        LLAMA_VISION_PORT=free_port(),
        LLAMA_PORT=free_port(),
        API_PORT=0,  # the API picks a free port
        LLAMA_CTX_SIZE=512,
        HUNG_PROBE_SECONDS=5,
        RUN_MODE="switch",
    )
    paths = AppPaths.resolve().ensure()
    setup_logging(paths.app_log_file, console=False)
    core = build_core(settings, paths)
    await core.start()
    failures: list[str] = []
    cycle_s: list[float] = []
    llm, vision = core.catalogue.role(LLM), core.catalogue.role(VISION)

    async def cycle() -> None:
        t = time.perf_counter()
        try:
            await core.lifecycle.ensure(llm)
            await core.lifecycle.ensure(vision)  # switch mode: the one port swaps
            await core.lifecycle.ensure(llm)
        except Exception as e:
            failures.append(f"cycle: {type(e).__name__}: {e}")
        finally:
            await core.lifecycle.unload_all()
        cycle_s.append(time.perf_counter() - t)

    await cycle()  # warm-up: imports, first spawn, caches
    start = snapshot()
    show("start", start)
    step = max(1, args.cycles // 10)
    for i in range(1, args.cycles + 1):
        await cycle()
        if i % step == 0:
            show(f"cycle {i}", snapshot())

    req_s: list[float] = []
    req_start: dict | None = None
    via_api = not args.direct
    direct_headers: dict[str, str] = {}
    if args.requests:
        if via_api:
            if core.api is None or not core.api.url:
                raise SystemExit("the app's API did not start (API_ENABLED off?)")
            url = f"{core.api.url}/v1/chat/completions"  # JIT-loads the LLM role's model
        else:
            st = await core.lifecycle.ensure(llm)
            url = server_url(st.port, "/v1/chat/completions", st)
            direct_headers = auth_headers(st)
        body = {
            "model": llm.key,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 1,
        }
        async with httpx.AsyncClient(timeout=60, trust_env=False, headers=direct_headers) as c:
            for _ in range(100):  # warm-up: the JIT load, the connection pools
                r = await c.post(url, json=body)
                if r.status_code != 200:
                    failures.append(f"warm-up request: HTTP {r.status_code}: {r.text[:200]}")
                    break
            req_start = snapshot()
            show("requests at", req_start)
            for i in range(1, args.requests + 1):
                t = time.perf_counter()
                try:
                    r = await c.post(url, json=body)
                    if r.status_code != 200:
                        failures.append(f"request: HTTP {r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as e:
                    failures.append(f"request: {type(e).__name__}: {e}")
                req_s.append(time.perf_counter() - t)
                if i % max(1, args.requests // 10) == 0:
                    show(f"request {i}", snapshot())
        await core.lifecycle.unload_all()

    end = snapshot()
    show("end", end)
    await core.stop()
    after = snapshot()
    show("after stop", after)
    notices = [f"{n.level}: {n.title}" for n in core.notices.history]
    print(f"cycles {args.cycles}: median {median_ms(cycle_s)} ms per cycle")
    if req_s:
        print(f"requests {len(req_s)}: median {median_ms(req_s)} ms")
    print(f"failures: {len(failures)}")
    for f in failures[:10]:
        print("  ", f)
    extra = [n for n in notices if not n.startswith("info")]
    print(f"app log: {paths.app_log_file}")
    print(f"warnings/errors told to the user: {len(extra)}", *extra[:10], sep="\n   ")
    return {
        "cycles": args.cycles,
        "requests": len(req_s),
        "via_api": via_api,
        "requests_start": req_start,
        "start": start,
        "end": end,
        "after_stop": after,
        "rss_growth_mb": round(end["rss_mb"] - start["rss_mb"], 1),
        "fd_growth": end["fds"] - start["fds"],
        "thread_growth": end["threads"] - start["threads"],
        "cycle_median_ms": median_ms(cycle_s),
        "request_median_ms": median_ms(req_s) if req_s else None,
        "failures": failures,
        "notices": notices,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cycles", type=int, default=1000)
    p.add_argument("--requests", type=int, default=10000)
    p.add_argument("--direct", action="store_true", help="send requests straight to llama-server")
    p.add_argument(
        "--via-api",
        action="store_true",
        help="through the app's API (the default; kept for old scripts)",
    )
    args = p.parse_args()
    result = asyncio.run(soak(args))
    if result["requests_start"]:
        rs, end = result["requests_start"], result["end"]
        print(
            f"growth over the requests: RSS {round(end['rss_mb'] - rs['rss_mb'], 1):+} MB, "
            f"fds {end['fds'] - rs['fds']:+}, threads {end['threads'] - rs['threads']:+}"
        )
    print(
        f"growth start->end: RSS {result['rss_growth_mb']:+} MB, fds {result['fd_growth']:+}, "
        f"threads {result['thread_growth']:+}"
    )
    save("soak", result, measures=MEASURES)


if __name__ == "__main__":
    main()
