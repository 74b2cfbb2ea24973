"""Live speed statistics per model key, fed by the API's proxy from llama-server's own
``timings`` (Qt-free; the tray, the models window, ``GET /api/v0/stats`` and ``--ps`` read it).

Kept by key, not by process, so they survive a model reload; ``reset`` clears them. Each
model keeps its last ``WINDOW`` replies that carried timings; requests and tokens served are
counted over the app's life (or since the last reset).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.events import Listeners

WINDOW = 50  # replies kept per model: the rolling figures and the sparkline


@dataclass(frozen=True)
class Sample:
    """One reply: llama-server's timings and the proxy's own time to the first byte."""

    at: float  # wall-clock time of the reply's end
    prompt_tokens: int  # prompt tokens evaluated (not those taken from the cache)
    prompt_ms: float  # llama-server's prompt_ms: time to the first token, server side
    tokens: int  # tokens generated
    generation_ms: float
    first_byte_ms: float | None = None  # request in → first byte out, through the proxy

    @property
    def prompt_tokens_per_second(self) -> float | None:
        return self.prompt_tokens * 1000 / self.prompt_ms if self.prompt_ms > 0 else None

    @property
    def generation_tokens_per_second(self) -> float | None:
        return self.tokens * 1000 / self.generation_ms if self.generation_ms > 0 else None

    @classmethod
    def from_timings(
        cls, timings: dict[str, Any], first_byte_ms: float | None = None, at: float | None = None
    ) -> Sample | None:
        """A sample from llama-server's ``timings`` object; None when it lacks the numbers."""
        try:
            return cls(
                at=time.time() if at is None else at,
                prompt_tokens=int(timings.get("prompt_n") or 0),
                prompt_ms=float(timings.get("prompt_ms") or 0.0),
                tokens=int(timings.get("predicted_n") or 0),
                generation_ms=float(timings.get("predicted_ms") or 0.0),
                first_byte_ms=first_byte_ms,
            )
        except (TypeError, ValueError):
            return None


def _rate(tokens: float, ms: float) -> float | None:
    return tokens * 1000 / ms if ms > 0 else None


@dataclass
class ModelStats:
    """One model's figures: the last replies, and what it served."""

    key: str
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=WINDOW))
    requests: int = 0  # every answered request, with or without timings
    tokens: int = 0  # tokens generated
    prompt_tokens: int = 0  # prompt tokens evaluated

    @property
    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    # Rolling figures: over the window, weighted by tokens (total tokens / total time), so a
    # one-token reply does not count as much as a long one.
    @property
    def generation_tokens_per_second(self) -> float | None:
        s = [x for x in self.samples if x.tokens > 1]  # one token has no generation time
        return _rate(sum(x.tokens for x in s), sum(x.generation_ms for x in s))

    @property
    def prompt_tokens_per_second(self) -> float | None:
        s = [x for x in self.samples if x.prompt_tokens > 0]
        return _rate(sum(x.prompt_tokens for x in s), sum(x.prompt_ms for x in s))

    @property
    def time_to_first_token_ms(self) -> float | None:
        """The median of llama-server's prompt time (its time to the first token)."""
        return _median([x.prompt_ms for x in self.samples if x.prompt_ms > 0])

    @property
    def first_byte_ms(self) -> float | None:
        """The median time from the request's arrival to the first byte the proxy sent."""
        return _median([x.first_byte_ms for x in self.samples if x.first_byte_ms is not None])

    def history(self) -> list[float]:
        """Generation tokens/s of the last replies, oldest first (the sparkline)."""
        out = []
        for x in self.samples:
            v = x.generation_tokens_per_second
            if v is not None and x.tokens > 1:
                out.append(v)
        return out


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


Listener = Callable[[str], None]


class SpeedStats:
    """Every model's ``ModelStats`` by key; ``subscribe`` to hear of each new reply."""

    def __init__(self) -> None:
        self._by_key: dict[str, ModelStats] = {}
        self._listeners: Listeners[str] = Listeners("speed statistics")

    def record(self, key: str, sample: Sample | None) -> None:
        """One answered request for ``key``, with its timings when it had them."""
        st = self._by_key.get(key)
        if st is None:
            st = self._by_key[key] = ModelStats(key)
        st.requests += 1
        if sample is not None:
            st.samples.append(sample)
            st.tokens += sample.tokens
            st.prompt_tokens += sample.prompt_tokens
        self._listeners.emit(key)

    def get(self, key: str) -> ModelStats | None:
        return self._by_key.get(key)

    def all(self) -> dict[str, ModelStats]:
        return dict(self._by_key)

    def reset(self, key: str | None = None) -> list[str]:
        """Forget one model's figures (or every model's); the keys that were cleared."""
        keys = list(self._by_key) if key is None else [key] if key in self._by_key else []
        for k in keys:
            del self._by_key[k]
        for k in keys:
            self._listeners.emit(k)
        return keys

    def subscribe(self, cb: Listener) -> Callable[[], None]:
        return self._listeners.add(cb)


def _round(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


def speed_fields(stats: ModelStats | None) -> dict[str, Any]:
    """The JSON fields of a model's speed (``GET /api/v0/stats``, ``--ps --json``): rolling
    figures over the last ``WINDOW`` replies; None where nothing was measured yet."""
    if stats is None:
        return {
            "generation_tokens_per_second": None,
            "prompt_tokens_per_second": None,
            "time_to_first_token_ms": None,
            "requests": 0,
            "tokens": 0,
        }
    return {
        "generation_tokens_per_second": _round(stats.generation_tokens_per_second),
        "prompt_tokens_per_second": _round(stats.prompt_tokens_per_second),
        "time_to_first_token_ms": _round(stats.time_to_first_token_ms),
        "requests": stats.requests,
        "tokens": stats.tokens,
    }


def speed_text(stats: ModelStats | None) -> str:
    """ "54.8 t/s" (rolling generation speed), or "" before the first timed reply."""
    v = stats.generation_tokens_per_second if stats is not None else None
    if v is None:
        return ""
    return f"{v:.1f} t/s" if v < 1000 else f"{v:,.0f} t/s"
