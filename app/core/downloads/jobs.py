"""Download jobs and their record on disk (``state/downloads.json``), kept so a download
interrupted by a quit, a crash or a reboot resumes at the next start."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.atomic import write_atomic
from app.core.units import elapsed_text, size_text

log = logging.getLogger(__name__)

QUEUED = "queued"
DOWNLOADING = "downloading"
VERIFYING = "verifying"
PAUSED = "paused"  # stopped by a quit; resumes at the next start
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE = frozenset({QUEUED, DOWNLOADING, VERIFYING, PAUSED})
FINISHED_KEPT = 20  # finished jobs remembered (newest), for the window and the REST list
SPEED_WINDOW = 5.0  # seconds of progress the speed is measured over


@dataclass
class JobFile:
    path: str  # in the repository
    size: int
    sha256: str | None
    dest: str  # where it goes: <model folder>/<publisher>/<repository>/<name>
    part: str  # where its bytes arrive until verified (a hidden folder, never scanned)
    verified: bool = False


@dataclass
class DownloadJob:
    id: str
    repo: str
    commit: str
    model: str  # the model's file name (its first shard)
    quant: str | None
    files: list[JobFile]
    state: str = QUEUED
    role: str | None = None  # "vision" / "llm": set as FamilyLog's model once downloaded
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    model_key: str | None = None  # its catalogue key, once listed
    already: bool = False  # the files were there already: nothing was downloaded
    # Not kept on disk: live progress.
    downloaded: int = field(default=0, compare=False)
    speed: float = field(default=0.0, compare=False)  # bytes per second, recent
    _samples: deque = field(default_factory=lambda: deque(maxlen=64), compare=False, repr=False)

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def model_path(self) -> Path:
        """The model's file (its first shard) once in place."""
        return Path(next(f.dest for f in self.files if Path(f.dest).name == self.model))

    @property
    def mmproj_path(self) -> Path | None:
        others = [f for f in self.files if "mmproj" in Path(f.dest).name.lower()]
        return Path(others[0].dest) if others else None

    @property
    def title(self) -> str:
        return f"{self.model}" + (f" ({self.repo})" if self.repo else "")

    def seconds_left(self) -> float | None:
        if self.state != DOWNLOADING or self.speed <= 0:
            return None
        return max(0.0, (self.total - self.downloaded) / self.speed)

    def progressed(self, done: int, now: float | None = None) -> None:
        """``done`` bytes of the whole job are here (from the download thread)."""
        now = time.monotonic() if now is None else now
        self.downloaded = done
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW:
            self._samples.popleft()
        t0, b0 = self._samples[0]
        if now - t0 >= 0.2:
            self.speed = max(0.0, (done - b0) / (now - t0))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for transient in ("downloaded", "speed", "_samples", "already"):
            data.pop(transient, None)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DownloadJob:
        files = [JobFile(**f) for f in data.pop("files")]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(files=files, **known)


def describe_progress(job: DownloadJob) -> str:
    """``Downloading Qwen3-8B-Q4_K_M.gguf: 1.2 of 5.0 GB, 45.1 MB/s, 1:24 left``."""
    if job.state == VERIFYING:
        return f"Checking {job.model} ({size_text(job.total)})"
    text = f"Downloading {job.model}: {size_text(job.downloaded)} of {size_text(job.total)}"
    if job.speed > 0:
        text += f", {job.speed / 1e6:.1f} MB/s"
        left = job.seconds_left()
        if left is not None:
            text += f", {elapsed_text(left)} left"
    return text


def summary_line(jobs: list[DownloadJob]) -> str | None:
    """The tray tooltip's line while something downloads (the running job, how many wait)."""
    running = [j for j in jobs if j.state in (DOWNLOADING, VERIFYING)]
    waiting = [j for j in jobs if j.state in (QUEUED, PAUSED)]
    if not running:
        return f"{len(waiting)} download(s) waiting" if waiting else None
    return describe_progress(running[0]) + (f" (+{len(waiting)} queued)" if waiting else "")


def new_job_id() -> str:
    """LM Studio's form: ``job_`` and ten hex digits."""
    return "job_" + secrets.token_hex(5)


class JobStore:
    """The jobs on disk, written atomically on every change of state (not of progress)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: ThreadPoolExecutor | None = None  # one thread: written in order

    def save(
        self, jobs: list[DownloadJob], loop: asyncio.AbstractEventLoop | None = None
    ) -> asyncio.Future[None] | None:
        """Keep ``jobs`` on disk: off ``loop`` when given (an fsync can take a while), by
        one writer thread, so the last state written is the last one asked for."""
        text = self.text(jobs)
        if loop is None or loop.is_closed():
            self.write(text)
            return None
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="downloads-state")
        return loop.run_in_executor(self._writer, self.write, text)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def load(self) -> list[DownloadJob]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("Cannot read %s (%s); starting with no downloads", self.path, e)
            return []
        jobs = []
        for item in raw.get("jobs", []) if isinstance(raw, dict) else []:
            try:
                jobs.append(DownloadJob.from_json(dict(item)))
            except (TypeError, KeyError, ValueError) as e:
                log.warning("Skipping an unreadable download record in %s: %s", self.path, e)
        return jobs

    @staticmethod
    def text(jobs: list[DownloadJob]) -> str:
        """What ``write`` puts on disk for ``jobs``: the active ones and the newest finished."""
        finished = [j for j in jobs if not j.active and not j.already]
        keep = {id(j) for j in finished[-FINISHED_KEPT:]}
        kept = [j.to_json() for j in jobs if (j.active or id(j) in keep) and not j.already]
        return json.dumps({"jobs": kept}, indent=1)

    def write(self, text: str) -> None:
        """Atomically, with an fsync (blocking: the service calls it off the loop)."""
        try:
            write_atomic(self.path, text)
        except OSError as e:
            log.warning("Cannot write %s: %s", self.path, e)
