"""Will it fit: the memory a model needs at the configured context (weights and KV cache,
from its header) against this machine's free GPU memory or RAM, before it is downloaded.

The estimate is placement's (``estimate_bytes``: files + KV cache + 15 % + 512 MB) and the
free memory is placement's probe (``free_memory``), so "fits" here means the same as it
does when the model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.discovery.gguf_header import GgufHeader
from app.core.discovery.gguf_info import info_from_headers
from app.core.downloads.files import RemoteModel
from app.core.lifecycle.placement import SAFETY_FACTOR, Free, estimate_bytes
from app.core.units import memory_text

FITS, TIGHT, NO_FIT = "fits", "tight", "does not fit"


@dataclass(frozen=True)
class Fit:
    verdict: str  # FITS, TIGHT or NO_FIT
    need: int  # bytes, with the margin
    free: int  # bytes free now
    what: str  # "free GPU memory" / "available RAM"
    reclaimable: int = 0  # held by models the app could unload first
    context: int = 0  # the context the need is for (tokens)

    def describe(self) -> str:
        """``fits: needs about 6.1 GB at 8,192 tokens of context; 10.3 GB available RAM``."""
        at = f" at {self.context:,} tokens of context" if self.context else ""
        text = f"{self.verdict}: needs about {memory_text(self.need)}{at}; {memory_text(self.free)} {self.what}"
        if self.verdict == TIGHT:
            if self.reclaimable and self.need <= self.free + self.reclaimable:
                text += f", {memory_text(self.reclaimable)} more once other models are unloaded"
            else:
                text += " (only without the estimate's margin: it may not load)"
        return text


def judge(need: int, free: Free, reclaimable: int = 0, context: int = 0) -> Fit:
    """Fits: ``need`` is free now. Tight: it is free once the app's other models are
    unloaded, or it misses only by the estimate's safety margin. Else it does not fit."""
    if need <= free.bytes:
        verdict = FITS
    elif need <= free.bytes + reclaimable or need <= (free.bytes + reclaimable) * SAFETY_FACTOR:
        verdict = TIGHT
    else:
        verdict = NO_FIT
    return Fit(verdict, need, free.bytes, free.what, reclaimable, context)


def need_for(model: RemoteModel, header: GgufHeader, ctx: int) -> tuple[int, int]:
    """Bytes ``model`` (and its projector) needs loaded at ``ctx`` tokens (0: its own
    context length), and that context, from the header of one of its files. Quantizations
    of one model share the KV cache, so one header serves them all."""
    info = info_from_headers(model.name, [header], model.size)
    return estimate_bytes(model.total_size, info, ctx), ctx or info.context_length or 4096
