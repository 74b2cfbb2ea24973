"""How long llama-server takes to exit after SIGTERM once the API has sent it a request: with
the API's connections to it closed as its stop begins (``ServerLinks``, the app now) against
the kept-alive connection left open (one shared session, the app before), in turn each round.

llama-server (cpp-httplib) looks at each kept-alive connection it holds every 10 ms to see
whether it is stopping, so an idle connection holds its exit up to 10 ms; a switch waits for
that exit. The request is a plain (not streamed) completion, as FamilyLog sends them.

    uv run python bench/stop.py [--rounds 30] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from common import free_port, llama_server_bin, median_ms, pct_ms, tiny_models
from results import save

MEASURES = ["app/core/api/server_links.py", "app/core/api/server.py"]


async def one_stop(model: Path, with_links: bool) -> float:
    import aiohttp

    from app.core.api.server_links import ServerLinks
    from app.core.servers.states import ServerState, ServerStatus, StateEvent

    port = free_port()
    cmd = [llama_server_bin(), "--host", "127.0.0.1", "--port", str(port), "-m", str(model)]
    cmd += ["--ctx-size", "2048"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if b"listening on http" in line:
            break
    else:
        raise SystemExit(f"llama-server did not start: {proc.wait()}")
    links = ServerLinks(lambda p: False, keepalive=2.0)
    shared = aiohttp.ClientSession()
    try:
        session = links.session(port) if with_links else shared
        url = f"http://127.0.0.1:{port}/completion"
        async with session.post(url, json={"prompt": "Hello", "n_predict": 1}) as r:
            await r.read()
        await asyncio.sleep(0.05)  # idle, as between two notes; and past llama-server's start
        t0 = time.perf_counter()
        if with_links:
            links.on_state(StateEvent(port, ServerState.READY, ServerState.STOPPING,
                                      ServerStatus(port=port, state=ServerState.STOPPING)))  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, proc.communicate)
        return time.perf_counter() - t0
    finally:
        await links.close()
        await shared.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def run(model: Path, rounds: int) -> dict:
    times: dict[str, list[float]] = {"links": [], "kept": []}
    await one_stop(model, True)  # warm the page cache and the binary
    for i in range(rounds):
        order = ["links", "kept"] if i % 2 == 0 else ["kept", "links"]
        for side in order:
            times[side].append(await one_stop(model, side == "links"))
    figures = {
        "rounds": rounds,
        "model_mb": round(model.stat().st_size / 1e6, 1),
        "exit_closed_ms": median_ms(times["links"]),
        "exit_kept_ms": median_ms(times["kept"]),
        "exit_closed_p90_ms": pct_ms(times["links"], 0.9),
        "exit_kept_p90_ms": pct_ms(times["kept"], 0.9),
    }
    figures["ratio_closed_over_kept"] = round(
        figures["exit_closed_ms"] / figures["exit_kept_ms"], 2
    )
    figures["rounds_closed_ms"] = [round(t * 1000, 1) for t in times["links"]]
    figures["rounds_kept_ms"] = [round(t * 1000, 1) for t in times["kept"]]
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--model", type=Path, help="a GGUF (default: the tiny test model)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flt-stop-"))
    try:
        model = args.model or tiny_models(work)[0]
        figures = asyncio.run(run(model, args.rounds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"exit after SIGTERM ({figures['model_mb']} MB model, {args.rounds} rounds, median / p90):"
    )
    print(f"  connections closed as the stop begins  {figures['exit_closed_ms']:6.1f} / "
          f"{figures['exit_closed_p90_ms']:.1f} ms")  # fmt: skip
    print(f"  kept-alive connection left open        {figures['exit_kept_ms']:6.1f} / "
          f"{figures['exit_kept_p90_ms']:.1f} ms")  # fmt: skip
    print(f"  ratio closed/kept {figures['ratio_closed_over_kept']:.2f}")
    name = "stop" if args.model is None else "stop-big"
    save(name, figures, measures=MEASURES)


if __name__ == "__main__":
    main()
