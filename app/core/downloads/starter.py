"""The seed's pair for a machine with no models: Qwen3-VL-8B with its projector for vision,
and an LLM sized to this machine's free memory, each with its size and fit, got in one go.

The LLM is the largest of a ladder (the seed's Qwen3.5-27B or GPT-OSS-20B first, then
smaller Qwen3 models) whose rough need fits the free GPU memory (or RAM); the hub then gives
its real size and header, and a repository the hub does not have moves down the ladder.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.core.downloads.files import RemoteModel, RepoFiles
from app.core.downloads.fit import Fit
from app.core.downloads.jobs import DownloadJob
from app.core.downloads.refs import HubError
from app.core.downloads.service import Downloads
from app.core.models.entry import LLM, VISION
from app.core.units import size_text

GB = 1024**3


@dataclass(frozen=True)
class Candidate:
    repo: str
    quant: str
    need: int  # roughly, at 8,192 tokens of context with placement's margin: to choose
    # before asking the hub


VISION_MODEL = Candidate("Qwen/Qwen3-VL-8B-Instruct-GGUF", "Q4_K_M", 8 * GB)
# Largest first. The seed names Qwen3.5-27B (~16 GB at Q4_K_M) or GPT-OSS-20B for the LLM.
LLM_LADDER = (
    Candidate("Qwen/Qwen3.5-27B-GGUF", "Q4_K_M", 21 * GB),
    Candidate("ggml-org/gpt-oss-20b-GGUF", "MXFP4", 15 * GB),
    Candidate("Qwen/Qwen3-14B-GGUF", "Q4_K_M", 13 * GB),
    Candidate("Qwen/Qwen3-8B-GGUF", "Q4_K_M", 8 * GB),
    Candidate("Qwen/Qwen3-4B-GGUF", "Q4_K_M", 5 * GB),
    Candidate("Qwen/Qwen3-1.7B-GGUF", "Q8_0", 4 * GB),
)


@dataclass
class Offer:
    """One model of the pair: what it is, its size, and whether it fits."""

    role: str  # "vision" or "llm"
    files: RepoFiles
    model: RemoteModel
    fit: Fit | None = None
    fit_problem: str | None = None  # why the fit is unknown (the header could not be read)

    def describe(self) -> str:
        what = "Vision" if self.role == VISION else "LLM"
        extra = f" + {self.model.mmproj.name}" if self.model.mmproj else ""
        fit = self.fit.describe() if self.fit else f"fit unknown ({self.fit_problem})"
        return f"{what}: {self.model.name}{extra} from {self.files.repo}, {size_text(self.model.total_size)}; {fit}"


def ladder_for(free: int, ladder: tuple[Candidate, ...] = LLM_LADDER) -> list[Candidate]:
    """The ladder from the largest candidate whose rough need fits ``free`` bytes down;
    the smallest alone when none does."""
    fitting = [i for i, c in enumerate(ladder) if c.need <= free]
    return list(ladder[fitting[0] :]) if fitting else [ladder[-1]]


async def _resolve(downloads: Downloads, c: Candidate) -> tuple[RepoFiles, RemoteModel]:
    """The candidate's repository and model: its quantization, else the preferred one."""
    files = await downloads.repo_files(c.repo)
    try:
        return files, files.pick(quant=c.quant)
    except LookupError:
        return files, files.pick()


async def starter_offer(
    downloads: Downloads,
    *,
    vision: Candidate = VISION_MODEL,
    ladder: tuple[Candidate, ...] = LLM_LADDER,
) -> list[Offer]:
    """The pair for this machine, with sizes and fit. ``HubError`` when the hub cannot be
    asked (no network, ``HF_HUB_OFFLINE``): the caller shows its one line."""
    loop = asyncio.get_running_loop()
    free = await loop.run_in_executor(None, downloads.free_memory_now)
    offers: list[Offer] = []
    files, model = await _resolve(downloads, vision)
    offers.append(Offer(VISION, files, model))
    last: HubError | None = None
    for c in ladder_for(free.bytes, ladder):
        try:
            files, model = await _resolve(downloads, c)
        except (HubError, LookupError) as e:
            if isinstance(e, HubError) and e.kind == "offline":
                raise
            last = e if isinstance(e, HubError) else HubError(str(e))
            continue
        offers.append(Offer(LLM, files, model))
        break
    else:
        raise last or HubError("None of the suggested LLMs is on the hub.")
    for offer in offers:
        try:
            offer.fit = await downloads.fit(offer.files, offer.model)
        except HubError as e:
            offer.fit_problem = str(e)
        except ValueError as e:  # a header that cannot be read
            offer.fit_problem = str(e)
    return offers


async def get_offer(downloads: Downloads, offers: list[Offer]) -> list[DownloadJob]:
    """Queue the pair, each to become its FamilyLog role once downloaded."""
    return [await downloads.enqueue(o.files, o.model, role=o.role) for o in offers]
