"""``familylog-tray --download REPO [--file NAME | --quant QUANT]``: ask the running app
(tray or ``--headless``) to get a model from the Hugging Face Hub, through its API (LM
Studio's ``POST /api/v1/models/download``), print the progress, and exit 0 once the
catalogue lists the model; 1 with the reason when it is refused or fails; 3 when no app
runs. It never starts the app, and Ctrl+C stops only the watching: the download goes on."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from app.config import Settings
from app.core.api.client import AppNotRunningError, app_url, call, error_message
from app.core.units import elapsed_text, size_text
from app.exit_codes import ExitCode

POLL_SECONDS = 0.5
LINE_EVERY = 5.0  # seconds between progress lines when the output is not a terminal


def progress_line(job: dict) -> str:
    done, total = job.get("downloaded_bytes") or 0, job.get("total_size_bytes") or 0
    pct = f"{100 * done / total:5.1f} %" if total else "  ?  %"
    text = f"{job.get('model', '?')}: {pct}  {size_text(done)} of {size_text(total)}"
    speed = job.get("bytes_per_second")
    if job.get("state") == "verifying":
        return text + "  checking SHA-256"
    if speed:
        text += f"  {speed / 1e6:.1f} MB/s"
        left = _seconds_left(job)
        if left is not None:
            text += f"  {elapsed_text(left)} left"
    elif job.get("state") == "queued":
        text += "  waiting for the download before it"
    return text


def _seconds_left(job: dict) -> float | None:
    done, total = job.get("downloaded_bytes") or 0, job.get("total_size_bytes") or 0
    speed = job.get("bytes_per_second") or 0
    return (total - done) / speed if speed > 0 and total >= done else None


def download_command(
    s: Settings,
    model: str,
    *,
    file: str | None = None,
    quant: str | None = None,
    out: TextIO | None = None,
    poll: float = POLL_SECONDS,
) -> int:
    out = out or sys.stdout
    body: dict = {"model": model}
    if file:
        body["file"] = file
    if quant:
        body["quantization"] = quant
    try:
        status, answer = call(s, "/api/v1/models/download", body, timeout=120)
    except AppNotRunningError:
        return _not_running(s)
    if status != 200:
        print(f"familylog-tray: {error_message(answer)}", file=sys.stderr)
        return ExitCode.REFUSED
    if answer.get("status") == "already_downloaded":
        key = answer.get("model_key")
        where = f'listed as "{key}"' if key else "in the model folder"
        print(f"{answer.get('model', model)} is downloaded already: {where}.", file=out)
        return ExitCode.OK
    job_id = answer["job_id"]
    print(
        f"Getting {answer.get('model')} from {answer.get('repo')} "
        f"({size_text(answer.get('total_size_bytes') or 0)}); job {job_id}.",
        file=out,
    )
    tty = out.isatty()
    last_line, last_at = "", 0.0
    try:
        while True:
            try:
                status, job = call(s, f"/api/v1/models/download/status/{job_id}")
            except AppNotRunningError:
                print(
                    "\nfamilylog-tray stopped; the download resumes when it starts again.",
                    file=sys.stderr,
                )
                return ExitCode.REFUSED
            if status != 200:
                print(f"\nfamilylog-tray: {error_message(job)}", file=sys.stderr)
                return ExitCode.REFUSED
            line = progress_line(job)
            now = time.monotonic()
            if tty:
                print("\r" + line.ljust(len(last_line)), end="", file=out, flush=True)
                last_line = line
            elif line != last_line and now - last_at >= LINE_EVERY:
                print(line, file=out, flush=True)
                last_line, last_at = line, now
            state = job.get("status")
            if state == "completed":
                if tty:
                    print(file=out)
                key = job.get("model_key")
                if not key:
                    print(
                        f"familylog-tray: {job.get('model')} was downloaded but the catalogue "
                        "does not list it; see the app's log.",
                        file=sys.stderr,
                    )
                    return ExitCode.REFUSED
                print(f'Downloaded {job.get("model")}: listed as "{key}".', file=out)
                return ExitCode.OK
            if state in ("failed", "paused"):
                if tty:
                    print(file=out)
                why = job.get("error") or (
                    "the app is stopping; the download resumes when it starts again"
                    if state == "paused"
                    else "it failed"
                )
                print(f"familylog-tray: {why}", file=sys.stderr)
                return ExitCode.REFUSED
            time.sleep(poll)
    except KeyboardInterrupt:
        print(
            "\nStopped watching; the download goes on in the app (Get models… shows it).",
            file=sys.stderr,
        )
        return ExitCode.INTERRUPTED


def _not_running(s: Settings) -> int:
    print(
        f"familylog-tray is not running (nothing answers at {app_url(s)}; with the tray "
        "running, its API may be off: API_ENABLED), so there is nothing to download the "
        "model into. Start it first (`familylog-tray`, or `familylog-tray --headless`), then "
        "try again.",
        file=sys.stderr,
    )
    return ExitCode.NOT_RUNNING
