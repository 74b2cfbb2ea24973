"""Where a download's files are: their bytes arrive in the model folder's hidden
``.downloads/`` as ``*.part`` (never scanned: hidden, and no ``.gguf``), then go into LM
Studio's layout, ``<folder>/<publisher>/<repository>/<file>``, once verified; a file the
Hugging Face cache holds already is taken from there."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from app.core.discovery.folders import HUGGING_FACE, default_folders
from app.core.downloads.files import RemoteModel
from app.core.downloads.jobs import DownloadJob, JobFile

STAGING = ".downloads"
DiskFree = Callable[[Path], int]


def plan_files(base: Path, repo: str, model: RemoteModel) -> list[JobFile]:
    """The files of ``model`` (projector first) from ``repo``, under the folder ``base``."""
    publisher, name = repo.split("/", 1)
    dest, stage = base / publisher / name, base / STAGING / publisher / name
    return [
        JobFile(f.path, f.size, f.sha256, str(dest / f.name), str(stage / (f.name + ".part")))
        for f in model.all_files
    ]


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def margin_for(size: int) -> int:
    """Room kept free beside a download: 2 % of it, at least 256 MiB."""
    return max(256 << 20, size // 50)


def existing_folder(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists (a folder not made yet)."""
    return next((p for p in (path, *path.parents) if p.exists()), path)


def remaining(f: JobFile) -> int:
    if f.verified or in_place(f):
        return 0
    try:
        return max(0, f.size - Path(f.part).stat().st_size)
    except OSError:
        return f.size


def in_place(f: JobFile) -> bool:
    try:
        return Path(f.dest).stat().st_size == f.size
    except OSError:
        return False


def remove_parts(job: DownloadJob) -> None:
    for f in job.files:
        Path(f.part).unlink(missing_ok=True)
    tidy(Path(job.files[0].part).parent)


def tidy(folder: Path) -> None:
    """Remove the staging folders a job leaves empty, up to ``.downloads`` itself."""
    for p in (folder, *folder.parents):
        if p.name == "" or not p.is_dir():
            break
        try:
            p.rmdir()
        except OSError:
            break
        if p.name == STAGING:
            break


def hf_cache() -> Path | None:
    """The Hugging Face hub cache as the environment names it now."""
    found = [f.path for f in default_folders() if f.source == HUGGING_FACE]
    return found[0] if found and found[0].is_dir() else None


def cached(cache: Path | None, repo: str, path: str, commit: str) -> Path | None:
    if cache is None:
        return None
    from huggingface_hub.file_download import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo, path, cache_dir=cache, revision=commit)
    except Exception:
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def place(job: DownloadJob) -> None:
    """Move the verified files into place: the projector first, then the shards from
    the last, so the scan finds nothing half there."""
    projectors = [f for f in job.files if "mmproj" in Path(f.dest).name.lower()]
    shards = [f for f in job.files if f not in projectors]
    for f in projectors + list(reversed(shards)):
        dest, part = Path(f.dest), Path(f.part)
        if in_place(f) and not part.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)
    tidy(Path(job.files[0].part).parent)
