"""Run the prompt set N times against one or more OpenAI-compatible servers, interleaved
(run 1 of every prompt on every server, then run 2, ...); ``results.py`` summarises it.

Each request is streamed. Where the server reports llama-server's ``timings`` (the app's
API and llama-server do), prompt and generation speed are the server's own; elsewhere
(LM Studio, others) they are measured here from the stream: prompt tokens over the time to
the first token, and the tokens after the first over the time they took. Time to first
token and total time are always measured here, as a client sees them.

The set fits each model: a prompt longer than the model's context (llama-server says so,
with both sizes) is shortened to fit when its text can be, else skipped with the reason; a
prompt that fails is recorded with why and the others still run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from app.core.api.speed import find_timings
from app.core.bench.prompts import Prompt

Progress = Callable[[int, int, str], None]  # done, total, what is running now


class BenchmarkError(RuntimeError):
    """A server refused or broke off a request; the message says which and why."""


async def get_json(url: str, key: str = "") -> dict:
    """GET ``url`` (a model list); ``BenchmarkError`` unless it answers 200."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), trust_env=False) as s,
        s.get(url, headers=headers) as r,
    ):
        if r.status != 200:
            raise BenchmarkError(f"{url} answered {r.status}: {(await r.text())[:200]}")
        return await r.json(content_type=None)


class TooLongError(BenchmarkError):
    """The prompt does not fit the model's context (llama-server's
    ``exceed_context_size_error``, which names both sizes)."""

    def __init__(self, message: str, prompt_tokens: int, context: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context = context


def error_text(text: str) -> str:
    """The message of an error answer (OpenAI's, Anthropic's or LM Studio's shape), else the
    text as it came."""
    try:
        err = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"]
    return err if isinstance(err, str) else text


def too_long(status: int, text: str) -> TooLongError | None:
    """llama-server's answer that a prompt exceeds the context, read; None for any other."""
    try:
        err = json.loads(text).get("error") or {}
        if status == 400 and err.get("type") == "exceed_context_size_error":
            n, ctx = int(err["n_prompt_tokens"]), int(err["n_ctx"])
            return TooLongError(err.get("message", ""), n, ctx)
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    return None


@dataclass(frozen=True)
class Target:
    server: str  # "app", or the URL of the other server
    url: str  # its OpenAI base URL, ending in /v1
    model: str
    api_key: str = ""


@dataclass(frozen=True)
class Measurement:
    server: str
    model: str
    prompt: str
    run: int
    prompt_tokens: int
    tokens: int
    prompt_tokens_per_second: float | None
    generation_tokens_per_second: float | None
    time_to_first_token_ms: float
    total_ms: float
    source: str  # "server" (llama-server's timings) or "client" (measured from the stream)
    note: str = ""  # what the table says of it: shortened to fit, answer cut short
    error: str = ""  # why it did not run (skipped, failed): then it has no figures


async def measure(
    session: aiohttp.ClientSession, target: Target, prompt: Prompt, run: int
) -> Measurement:
    headers = {"Content-Type": "application/json"}
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    body = json.dumps(prompt.body(target.model)).encode()
    t0 = time.perf_counter()
    first = last = None
    pieces = 0
    usage: dict[str, Any] = {}
    timings = None
    tail = b""
    async with session.post(
        target.url.rstrip("/") + "/chat/completions", data=body, headers=headers
    ) as r:
        if r.status != 200:
            text = await r.text()
            raise too_long(r.status, text) or BenchmarkError(
                f"{target.server} answered {r.status}: {error_text(text)[:300]}"
            )
        buf = b""
        async for chunk in r.content.iter_any():
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.startswith(b"data: {"):
                    continue
                now = time.perf_counter()
                event = json.loads(line[6:])
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content") or delta.get("reasoning_content"):
                        first = first or now
                        last = now
                        pieces += 1
                if event.get("usage"):
                    usage = event["usage"]
                if b'"timings"' in line:
                    tail = line
    total = time.perf_counter() - t0
    if first is None or last is None:
        raise BenchmarkError(f"{target.server} sent no tokens for {prompt.name}")
    if tail:
        timings = find_timings(tail)
    ttft_ms = (first - t0) * 1000
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    tokens = int(usage.get("completion_tokens") or pieces)
    if timings and timings.get("predicted_ms") and timings.get("prompt_ms"):
        prompt_tokens = int(timings.get("prompt_n") or prompt_tokens)
        tokens = int(timings.get("predicted_n") or tokens)
        p_tps = prompt_tokens * 1000 / float(timings["prompt_ms"])
        g_tps = tokens * 1000 / float(timings["predicted_ms"])
        source = "server"
    else:
        p_tps = prompt_tokens * 1000 / ttft_ms if prompt_tokens and ttft_ms > 0 else None
        g_tps = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
        source = "client"
    return Measurement(
        server=target.server,
        model=target.model,
        prompt=prompt.name,
        run=run,
        prompt_tokens=prompt_tokens,
        tokens=tokens,
        prompt_tokens_per_second=p_tps,
        generation_tokens_per_second=g_tps,
        time_to_first_token_ms=ttft_ms,
        total_ms=total * 1000,
        source=source,
        note=(
            f"answer ended after {tokens} of {prompt.max_tokens} tokens"
            if tokens < prompt.max_tokens
            else ""
        ),
    )


FIT_MARGIN = 16  # tokens left free when a prompt is shortened to fit (template, rounding)
MIN_FIT_TOKENS = 64  # a long prompt cut below this is no long prompt: skipped instead


def fitted(prompt: Prompt, err: TooLongError) -> Prompt | None:
    """``prompt`` shortened to fit the context ``err`` names, with room for its answer; None
    when its text cannot be shortened or would be cut to almost nothing."""
    if prompt.build is None or not prompt.text_tokens:
        return None
    room = err.context - prompt.max_tokens - FIT_MARGIN
    tokens = int(prompt.text_tokens * room / err.prompt_tokens) if room > 0 else 0
    if tokens < min(MIN_FIT_TOKENS, prompt.text_tokens) or tokens >= prompt.text_tokens:
        return None
    return prompt.shortened(tokens)


def _failed(target: Target, prompt: Prompt, run: int, error: str) -> Measurement:
    return Measurement(
        server=target.server,
        model=target.model,
        prompt=prompt.name,
        run=run,
        prompt_tokens=0,
        tokens=0,
        prompt_tokens_per_second=None,
        generation_tokens_per_second=None,
        time_to_first_token_ms=0.0,
        total_ms=0.0,
        source="",
        error=error,
    )


async def measure_fitted(
    session: aiohttp.ClientSession, target: Target, prompt: Prompt, run: int
) -> tuple[Measurement, Prompt]:
    """Measure ``prompt``, shortened (up to three times) while the server says it does not
    fit; (the measurement, the prompt that ran). One that cannot run comes back with its
    ``error`` in words, never raised."""
    asked = prompt
    for _ in range(4):
        try:
            m = await measure(session, target, prompt, run)
        except TooLongError as e:
            shorter = fitted(prompt, e)
            if shorter is None:
                why = (
                    f"skipped: it needs {e.prompt_tokens:,} tokens and the model's context "
                    f"holds {e.context:,}"
                )
                return _failed(target, asked, run, why), prompt
            prompt = shorter
            continue
        except (BenchmarkError, TimeoutError, aiohttp.ClientError) as e:
            why = f"failed: {e or type(e).__name__}"
            return _failed(target, asked, run, why), prompt
        if prompt is not asked:
            fit = f"shortened to {m.prompt_tokens:,} prompt tokens to fit the model's context"
            m = replace(m, note="; ".join(filter(None, (fit, m.note))))
        return m, prompt
    why = "skipped: it could not be shortened to fit the model's context"
    return _failed(target, asked, run, why), prompt


async def run_benchmark(
    targets: list[Target],
    prompts: list[Prompt],
    runs: int,
    *,
    progress: Progress | None = None,
    timeout: float = 600.0,
) -> list[Measurement]:
    """Every prompt ``runs`` times on every target, interleaved; cancel the task to stop.

    A prompt shortened to fit a target runs shortened from then on; one that could not run
    (skipped, failed) is recorded once with why (``Measurement.error``) and not tried again
    on that target, while the other prompts go on."""
    total = runs * len(prompts) * len(targets)
    done = 0
    out: list[Measurement] = []
    running: dict[tuple[str, str], Prompt] = {}  # (server, prompt): the version that fits
    given_up: set[tuple[str, str]] = set()
    session = aiohttp.ClientSession(
        # a connection per request: llama-server closes one after a streamed answer
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10),
        trust_env=False,
    )
    try:
        async with session:
            for run in range(1, runs + 1):
                for prompt in prompts:
                    order = targets if run % 2 else targets[::-1]  # alternate who goes first
                    for target in order:
                        key = (target.server, prompt.name)
                        if key in given_up:
                            done += 1
                            continue
                        if progress is not None:
                            progress(
                                done, total, f"run {run}/{runs}: {prompt.name} on {target.server}"
                            )
                        m, running[key] = await measure_fitted(
                            session, target, running.get(key, prompt), run
                        )
                        out.append(m)
                        if m.error:
                            given_up.add(key)
                        done += 1
    finally:
        if progress is not None:
            progress(done, total, "done" if done == total else "stopped")
    return out
