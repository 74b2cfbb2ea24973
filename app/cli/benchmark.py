"""``familylog-tray --benchmark``: the prompt set against the running app's API (its
OpenAI endpoint on ``API_PORT``), and with ``--against URL`` against another server too.

It never starts the app: with none running it says so (exit 3). It prints progress, then
the table; the runs are kept in the app home (``state/benchmarks``) as JSON, CSV and the
chart PNG, and ``--json FILE`` writes the JSON there as well (``--json`` alone: to stdout).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

from app.core.api.client import app_url
from app.core.bench.prompts import PromptSizes, prompt_set, sample_image
from app.core.bench.results import save_results, summarize, table_text, write_json
from app.core.bench.runner import BenchmarkError, Target, get_json, run_benchmark
from app.exit_codes import ExitCode


async def pick_app_model(base: str, key: str, wanted: str | None) -> tuple[str, bool]:
    """(the model's key, whether it is a vision model): ``wanted``, or the loaded one."""
    models = (await get_json(f"{base}/api/v0/models", key)).get("data") or []
    if wanted:
        for m in models:
            if m.get("id") == wanted:
                return wanted, m.get("type") == "vlm"
        return wanted, False  # an alias: the app resolves it
    loaded = [m for m in models if m.get("state") == "loaded" and m.get("type") in ("llm", "vlm")]
    if len(loaded) == 1:
        return loaded[0]["id"], loaded[0].get("type") == "vlm"
    names = ", ".join(m["id"] for m in models if m.get("type") in ("llm", "vlm")) or "none"
    raise ValueError(
        ("More than one model is loaded" if loaded else "No model is loaded")
        + f"; name one with --model (known: {names})"
    )


async def benchmark_command(args, settings, paths) -> int:
    key = settings.API_KEY.get_secret_value()
    base = app_url(settings)
    try:
        model, vision = await pick_app_model(base, key, args.model)
    except aiohttp.ClientConnectionError:
        print(
            f"familylog-tray is not answering on {base}: start the app first (its API serves "
            "the benchmark), then try again.",
            file=sys.stderr,
        )
        return ExitCode.NOT_RUNNING
    except (ValueError, BenchmarkError) as e:
        print(f"familylog-tray: {e}", file=sys.stderr)
        return ExitCode.USAGE
    targets = [Target("app", f"{base}/v1", model, key)]
    if args.against:
        url = args.against.rstrip("/")
        other = args.against_model
        if not other:
            try:
                listed = (await get_json(f"{url}/models")).get("data") or []
            except (aiohttp.ClientError, BenchmarkError) as e:
                print(f"familylog-tray: {url} did not list its models: {e}", file=sys.stderr)
                return ExitCode.FAILED
            if not listed:
                print(f"familylog-tray: {url} lists no model; use --against-model", file=sys.stderr)
                return ExitCode.USAGE
            other = listed[0]["id"]
        targets.append(Target(url, url, other))
    sizes = PromptSizes(
        long_prompt_tokens=args.prompt_tokens,
        generate_tokens=args.gen_tokens,
        short_tokens=min(32, args.gen_tokens),
    )
    prompts = prompt_set(sizes, image=sample_image() if vision else None)
    quiet = args.json == "-"

    def progress(done: int, total: int, what: str) -> None:
        if not quiet:
            print(f"[{done}/{total}] {what}", flush=True)

    try:
        measurements = await run_benchmark(targets, prompts, args.runs, progress=progress)
    except BenchmarkError as e:
        print(f"familylog-tray: {e}", file=sys.stderr)
        return ExitCode.FAILED
    rows = summarize(measurements)
    code = ExitCode.FAILED if any(r.failed for r in rows) else ExitCode.OK  # the table shows which
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path, csv_path = save_results(paths.bench_dir, rows, measurements, stamp)
    chart = paths.bench_dir / f"benchmark-{stamp}.png"
    try:
        from app.ui.bench_chart import save_chart

        save_chart(rows, chart)
    except Exception as e:  # no Qt platform at all: the table and files still count
        print(f"familylog-tray: no chart ({e})", file=sys.stderr)
        chart = None
    if quiet:
        print(json.dumps({"results": [r.json() for r in rows]}, indent=2))
        return code
    if args.json:
        write_json(Path(args.json), rows, measurements)
    print()
    print(table_text(rows))
    print()
    print("Medians over the runs, (min–max) where they differ.")
    print(f"Saved {json_path}, {csv_path}" + (f" and {chart}" if chart else ""))
    return code


def run(args, settings, paths) -> int:
    return asyncio.run(benchmark_command(args, settings, paths))
