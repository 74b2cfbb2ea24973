"""``Downloads``: the core service that gets models from the hub, one job at a time.

A job is a model (every shard) with its projector, going to the first ``MODEL_DIRS``
folder in LM Studio's layout, ``<publisher>/<repository>/<file>``. Its bytes arrive in a
hidden folder there (``.downloads/``, never scanned, with a ``.part`` suffix), each file's
SHA-256 is checked against the one the hub publishes, and only then are the files moved
into place, the projector first, so the catalogue lists the model once it is complete and
verified. A mismatch is removed and never listed. Jobs are kept in ``state/downloads.json``:
one a quit or a crash interrupts resumes at the next start from the bytes it has.

The hub's calls and the bytes run in threads; progress reaches the listeners on the loop,
at most a few times a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import SettingsSource
from app.core.discovery.folders import model_dirs
from app.core.downloads.files import RemoteModel, RepoFiles
from app.core.downloads.fit import Fit
from app.core.downloads.jobs import (
    CANCELLED,
    COMPLETED,
    DOWNLOADING,
    FAILED,
    PAUSED,
    QUEUED,
    VERIFYING,
    DownloadJob,
    JobStore,
    new_job_id,
    summary_line,
)
from app.core.downloads.lookup import HubLookup
from app.core.downloads.refs import DownloadRefused, HubError, ModelRef, RepoHit, parse_ref, refused
from app.core.downloads.staging import (
    DiskFree,
    disk_free,
    existing_folder,
    in_place,
    margin_for,
    place,
    plan_files,
    remaining,
    remove_parts,
)
from app.core.downloads.transfer import Cancel, Cancelled, ChecksumError
from app.core.downloads.worker import get_files
from app.core.events import Listeners
from app.core.lifecycle.placement import Free
from app.core.notices import Level, Notice, NoticeBus
from app.core.units import size_text

if TYPE_CHECKING:
    from app.core.downloads.hub import HubClient

log = logging.getLogger(__name__)

NOTIFY_EVERY = 0.25  # seconds between progress notices to listeners
Completed = Callable[[DownloadJob], Awaitable[str | None]]  # -> the model's catalogue key


class Downloads:
    """The download queue, as a core service (``start`` resumes, ``stop`` pauses)."""

    def __init__(
        self,
        settings: SettingsSource,
        state_file: Path,
        *,
        hub: HubClient | None = None,
        notices: NoticeBus | None = None,
        on_complete: Completed | None = None,
        disk_free: DiskFree = disk_free,
        free_memory: Callable[[], Free] | None = None,
        reclaimable: Callable[[], int] | None = None,
        retry_backoff: float = 1.0,
    ) -> None:
        self._settings = settings
        self.lookup = HubLookup(settings, hub, free_memory, reclaimable)
        self._store = JobStore(state_file)
        self._notices = notices
        self.on_complete = on_complete
        self._disk_free = disk_free
        self._backoff = retry_backoff
        self._jobs: list[DownloadJob] = []
        self._listeners: Listeners[[]] = Listeners("downloads")
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._current: tuple[DownloadJob, Cancel] | None = None
        self._pausing = False
        self._notify_pending = False
        self._last_notify = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    # ── Service life cycle ────────────────────────────────────────────────────
    async def start(self) -> None:
        """Read the jobs kept on disk; resume every one a quit or crash interrupted."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        kept = await self._loop.run_in_executor(None, self._store.load)
        known = {j.id for j in self._jobs}
        resumed = 0
        for job in kept:
            if job.id in known:
                continue
            if job.active:
                job.state = QUEUED
                job.downloaded = job.total - sum(remaining(f) for f in job.files)
                resumed += 1
            self._jobs.append(job)
        if resumed:
            log.info("Resuming %d download(s) left from the last run", resumed)
        self._pausing = False
        self._worker = asyncio.create_task(self._run(), name="downloads")
        self._changed(save=bool(kept))

    async def stop(self) -> None:
        """Pause: the running download stops where it is (its bytes stay, and it resumes at
        the next start); nothing waits for a stalled connection longer than 2 s."""
        self._pausing = True
        if self._current is not None:
            self._current[1].set()
        if self._wake is not None:
            self._wake.set()
        worker, self._worker = self._worker, None
        if worker is not None:
            try:
                await asyncio.wait_for(asyncio.shield(worker), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                worker.cancel()
        for job in self._jobs:
            if job.state in (DOWNLOADING, VERIFYING):
                job.state = PAUSED
        saved = self._save()
        if saved is not None:
            await saved
        self._store.close()

    # ── Reading ───────────────────────────────────────────────────────────────
    def jobs(self) -> list[DownloadJob]:
        return list(self._jobs)

    def job(self, job_id: str) -> DownloadJob | None:
        return next((j for j in self._jobs if j.id == job_id), None)

    def active(self) -> list[DownloadJob]:
        return [j for j in self._jobs if j.active]

    def subscribe(self, cb: Callable[[], None]) -> Callable[[], None]:
        """``cb()`` after a job changes (state, and progress a few times a second)."""
        return self._listeners.add(cb)

    def summary(self) -> str | None:
        """One line for the tray's tooltip while something downloads, else None."""
        return summary_line(self._jobs)

    def model_dir(self) -> Path:
        """Where downloads go: the first ``MODEL_DIRS`` folder (LM Studio's by default)."""
        return model_dirs(self._settings().MODEL_DIRS)[0].path

    # ── The hub, off the loop (``lookup.py``) ──────────────────────────────────
    @property
    def hub(self) -> HubClient:
        return self.lookup.hub

    async def search(self, query: str, limit: int = 40) -> list[RepoHit]:
        return await self.lookup.search(query, limit)

    async def repo_files(self, repo: str) -> RepoFiles:
        return await self.lookup.repo_files(repo)

    async def find(self, ref: ModelRef) -> tuple[RepoFiles, RemoteModel]:
        return await self.lookup.find(ref)

    async def fit(self, files: RepoFiles, model: RemoteModel) -> Fit:
        return await self.lookup.fit(files, model)

    def free_memory_now(self) -> Free:
        return self.lookup.free_memory_now()

    # ── Asking for downloads ──────────────────────────────────────────────────
    async def request(
        self,
        model: str,
        *,
        file: str | None = None,
        quant: str | None = None,
        role: str | None = None,
    ) -> DownloadJob:
        """Queue the model ``model`` names (a repository, ``repo:QUANT`` or a link), by
        ``file`` or ``quant``; ``DownloadRefused`` says why not."""
        try:
            ref = parse_ref(model, file, quant)
        except ValueError as e:
            raise DownloadRefused(str(e)) from None
        try:
            files, chosen = await self.find(ref)
        except HubError as e:
            raise refused(e) from None
        return await self.enqueue(files, chosen, role=role)

    async def enqueue(
        self, files: RepoFiles, model: RemoteModel, *, role: str | None = None
    ) -> DownloadJob:
        """Queue ``model`` of ``files``; the job already queued for it if there is one, a
        job marked ``already`` when its files are in place. Checks access (a gated
        repository) and free disk space before anything starts."""
        base = self.model_dir()
        queued = self._queued_for(files.repo, model.name, role)
        if queued is not None:
            return queued
        plan = plan_files(base, files.repo, model)
        job = DownloadJob(
            new_job_id(), files.repo, files.commit, model.name, model.quant, plan, role=role
        )
        if all(in_place(f) for f in plan):
            job.state, job.already, job.completed_at = COMPLETED, True, time.time()
            job.downloaded = job.total
            await self._completed(job, tell=False)
            return job
        try:  # a gated repository says so now, not once the job runs
            await self.lookup.call("metadata", files.repo, files.commit, plan[-1].path)
        except HubError as e:
            raise refused(e) from None
        queued = self._queued_for(files.repo, model.name, role)  # asked twice at once
        if queued is not None:
            return queued
        self._check_disk(base, job)
        self._jobs.append(job)
        where = job.model_path.parent
        log.info("Queued %s from %s (%s) into %s", job.model, job.repo, size_text(job.total), where)
        self._changed(save=True)
        if self._wake is not None:
            self._wake.set()
        return job

    def _queued_for(self, repo: str, model: str, role: str | None) -> DownloadJob | None:
        """The active job for this model, if there is one (never a second copy)."""
        for job in self._jobs:
            if job.active and job.repo == repo and job.model == model:
                if role and not job.role:
                    job.role = role
                    self._changed(save=True)
                return job
        return None

    def _check_disk(self, base: Path, job: DownloadJob) -> None:
        folder = existing_folder(base)
        try:
            free = self._disk_free(folder)
        except OSError as e:
            raise DownloadRefused(f"Cannot read the free space of {folder}: {e}", "disk") from None
        left = sum(remaining(f) for f in job.files)
        queued = sum(remaining(f) for j in self.active() for f in j.files)
        need = left + queued + margin_for(left)
        if free < need:
            also = f", {size_text(queued)} more for the downloads already queued" if queued else ""
            raise DownloadRefused(
                f"Not enough disk space for {job.model}: it needs {size_text(left)}{also} and "
                f"{size_text(margin_for(left))} to spare, but {folder} has {size_text(free)} free. Free "
                "some space, or put a folder on a bigger disk first in MODEL_DIRS (Settings).",
                "insufficient_disk",
                507,
            )

    def cancel(self, job_id: str) -> bool:
        """Stop and forget a job: what arrived is deleted. False when there is no such
        active job."""
        job = self.job(job_id)
        if job is None or not job.active:
            return False
        if self._current is not None and self._current[0] is job:
            self._current[1].set()  # the worker ends it as cancelled
            job.error = "Cancelled."
            self._changed()
            return True
        job.state, job.error = CANCELLED, "Cancelled."
        remove_parts(job)
        self._changed(save=True)
        return True

    # ── The worker ────────────────────────────────────────────────────────────
    async def _run(self) -> None:
        assert self._wake is not None
        while not self._pausing:
            job = next((j for j in self._jobs if j.state == QUEUED), None)
            if job is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._download(job)

    async def _download(self, job: DownloadJob) -> None:
        cancel = Cancel()
        self._current = (job, cancel)
        job.state, job.error = DOWNLOADING, None
        job.started_at = job.started_at or time.time()
        self._changed(save=True)
        try:
            await get_files(
                job,
                lambda: self.hub,
                cancel,
                lambda save: self._changed(save=save),
                self._notify_soon,
                self._backoff,
            )
            place(job)
            job.completed_at = time.time()
            await self._completed(job, tell=True)  # listed (and its role set) first
            job.state = COMPLETED
        except Cancelled:
            if self._pausing:
                job.state = PAUSED
                log.info(
                    "Download of %s paused at %s; it resumes at the next start",
                    job.model,
                    size_text(job.downloaded),
                )
            else:
                await asyncio.get_running_loop().run_in_executor(None, remove_parts, job)
                job.state = CANCELLED
                log.info("Download of %s cancelled", job.model)
        except (HubError, ChecksumError, OSError) as e:
            self._failed(job, str(e))
        except Exception as e:  # a bug: still end the job with what happened
            log.exception("Download of %s failed", job.model)
            self._failed(job, f"{type(e).__name__}: {e}")
        finally:
            self._current = None
            self._changed(save=True)

    async def _completed(self, job: DownloadJob, *, tell: bool) -> None:
        if self.on_complete is not None:
            try:
                job.model_key = await self.on_complete(job)
            except Exception:
                log.exception("After downloading %s", job.model)
        where = f'listed as "{job.model_key}"' if job.model_key else f"in {job.model_path.parent}"
        log.info("Download of %s %s: %s", job.model, "done" if tell else "not needed", where)
        if tell and self._notices is not None:
            role = f"; it is now FamilyLog's {job.role} model" if job.role else ""
            self._notices.emit(
                Notice(
                    Level.INFO, f"Downloaded {job.model}", f"{size_text(job.total)}, {where}{role}."
                )
            )

    def _failed(self, job: DownloadJob, message: str) -> None:
        job.state, job.error = FAILED, message
        log.warning("Download of %s failed: %s", job.model, message)
        if self._notices is not None:
            self._notices.emit(Notice(Level.ERROR, f"Download of {job.model} failed", message))

    # ── Telling ───────────────────────────────────────────────────────────────
    def _save(self) -> asyncio.Future[None] | None:
        return self._store.save(self._jobs, self._loop)

    def _changed(self, *, save: bool = False) -> None:
        if save:
            self._save()
        self._last_notify = time.monotonic()
        self._listeners.emit()

    def _notify_soon(self) -> None:
        """From the download thread: tell the listeners on the loop, throttled."""
        loop = self._loop
        if loop is None or self._notify_pending:
            return
        self._notify_pending = True
        delay = max(0.0, NOTIFY_EVERY - (time.monotonic() - self._last_notify))

        def fire() -> None:
            self._notify_pending = False
            self._changed()

        try:
            loop.call_soon_threadsafe(lambda: loop.call_later(delay, fire))
        except RuntimeError:
            self._notify_pending = False
