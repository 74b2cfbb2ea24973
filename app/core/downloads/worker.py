"""One job's files brought into their part files and checked, one after the other: from the
Hugging Face cache when it holds a file, else from the hub (resuming what is there, hashed
as it arrives); each checked against the SHA-256 the hub publishes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.downloads.jobs import DOWNLOADING, VERIFYING, DownloadJob
from app.core.downloads.staging import cached, hf_cache, in_place
from app.core.downloads.threads import in_thread
from app.core.downloads.transfer import Cancel, ChecksumError, copy_from_cache, fetch, sha256_file

if TYPE_CHECKING:
    from app.core.downloads.hub import HubClient

log = logging.getLogger(__name__)

Changed = Callable[[bool], None]  # a job moved; True: keep it on disk too


async def get_files(
    job: DownloadJob,
    hub: Callable[[], HubClient],
    cancel: Cancel,
    changed: Changed,
    on_bytes: Callable[[], None],
    backoff: float = 1.0,
) -> None:
    """Every file of ``job`` complete and verified in its part file (or in place already).
    ``hub()`` gives the hub client (made in the thread that first needs it); ``on_bytes``
    is called from the download thread as bytes arrive. Raises ``ChecksumError``,
    ``HubError``, ``Cancelled`` or ``OSError``."""
    offset = 0
    cache = hf_cache()
    for f in job.files:
        part = Path(f.part)
        start = offset
        offset += f.size
        if f.verified and part.is_file() and part.stat().st_size == f.size:
            job.progressed(start + f.size)
            continue
        if in_place(f):  # placed by an earlier run, which stopped before the end
            f.verified = True
            job.progressed(start + f.size)
            continue
        found = cached(cache, job.repo, f.path, job.commit)
        if found is not None:
            log.info("%s is in the Hugging Face cache: copying it", f.path)
            await in_thread(copy_from_cache, found, part)
            job.state = VERIFYING
            changed(False)
            digest = await in_thread(sha256_file, part, cancel)
        else:
            meta = await in_thread(lambda f=f: hub().metadata(job.repo, job.commit, f.path))
            if meta.size is not None and meta.size != f.size:
                f.size = meta.size

            def progress(done: int, start: int = start) -> None:  # in the download thread
                job.progressed(start + done)
                on_bytes()

            digest = await in_thread(  # hashed as the bytes arrive
                functools.partial(
                    fetch, hub(), meta, part, f.size, progress, cancel, backoff=backoff
                )
            )
        expected = (f.sha256 or "").lower()
        if expected and digest != expected:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{Path(f.dest).name} arrived with the wrong SHA-256 (the hub publishes "
                f"{expected[:12]}…, the bytes are {digest[:12]}…), so it was removed and "
                "is not listed. Get it again; if this repeats, the file on the hub or the "
                "connection is at fault."
            )
        f.verified = True
        job.state = DOWNLOADING
        changed(True)
