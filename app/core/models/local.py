"""Every GGUF model in the user's model folders (``MODEL_DIRS``), for the API's catalogue.

Headers only, cached by path, size and mtime: a second scan of unchanged files reads none.
The walk, the mmproj pairing and the key are first-run discovery's
(``app.core.discovery``): one key function for the table the user sees at first run and the
keys LM Studio clients see on the API.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.core.discovery.folders import default_folders, find_gguf_files
from app.core.discovery.gguf_header import GgufReadError
from app.core.discovery.gguf_info import GGUFInfo, InfoCache
from app.core.discovery.scan import (
    lmstudio_layout,
    model_key,
    pick_mmproj_path,
    quant_from_name,
)


@dataclass(frozen=True)
class LocalModel:
    key: str  # unique within one scan (and apart from the ``taken`` keys)
    path: Path  # the model file (first shard of a split model)
    mmproj: Path | None  # paired projector => vision
    aliases: tuple[str, ...]  # the file stem and the file name (not the key)
    info: GGUFInfo | None  # None if the header cannot be read (the scan lists no such file)
    type: str  # "llm" | "embedding" | "reranker"
    quant: str | None  # "Q4_K_M" etc. (from the header, else from the file name)
    folder: Path  # the MODEL_DIRS entry it was found under

    @property
    def vision(self) -> bool:
        return self.mmproj is not None


@dataclass
class LocalScan:
    models: list[LocalModel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per unreadable file


def model_dirs(
    value: str,
    *,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> list[Path]:
    """The folders ``MODEL_DIRS`` names, split like PATH (``;`` on Windows, ``:`` elsewhere),
    ``~`` expanded, empty parts dropped; empty: the folders first-run discovery scans (LM
    Studio's first). ``platform`` is a ``sys.platform`` value; ``home`` and ``environ``
    default to the user's."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    plat = platform or sys.platform
    sep = os.pathsep if platform is None else (";" if plat.startswith("win") else ":")
    out: list[Path] = []
    for part in value.split(sep):
        part = part.strip()
        if not part:
            continue
        if part == "~" or part.startswith(("~/", "~\\")):
            path = home / part[2:] if len(part) > 1 else home
        else:
            path = Path(part)
        if path not in out:
            out.append(path)
    if out:
        return out
    return [f.path for f in default_folders(home, dict(env), plat)]


def problem_line(path: Path, error: Exception) -> str:
    """``Skipped /m/x.gguf: it is not a GGUF file (wrong magic number).``"""
    if isinstance(error, GgufReadError):
        msg, where = str(error), str(path)
        if msg.startswith(where + " "):
            reason = "it " + msg[len(where) + 1 :]
        elif msg.startswith(where + ": "):
            reason = msg[len(where) + 2 :]
        else:
            reason = msg
    else:
        reason = (getattr(error, "strerror", None) or str(error)).rstrip(".")
        reason = f"it cannot be read ({reason})"
    return f"Skipped {path}: {reason.rstrip('.')}."


@dataclass
class _Found:
    folder: Path
    path: Path
    info: GGUFInfo
    real: Path


class LocalScanner:
    """Scans model folders; keeps its header cache from one scan to the next."""

    def __init__(self, cache: InfoCache | None = None) -> None:
        self.cache = cache if cache is not None else InfoCache()

    def scan(
        self,
        dirs: Sequence[Path],
        *,
        taken: Collection[str] = (),
        skip: Collection[Path] = (),
    ) -> LocalScan:
        """Every model under ``dirs`` (blocking: run it off the event loop). ``taken``: keys
        already used (the roles'); ``skip``: files already listed (the roles' models)."""
        result = LocalScan()
        skipped = {_resolve(Path(p)) for p in skip}
        seen: set[Path] = set()
        by_dir: dict[Path, list[_Found]] = {}
        for folder in dirs:
            folder = Path(folder).expanduser()
            for path in find_gguf_files(folder):
                real = _resolve(path)
                if real in seen:  # a folder inside another, or a link: listed once
                    continue
                seen.add(real)
                try:
                    info = self.cache.read(path)
                except (GgufReadError, OSError) as e:
                    result.problems.append(problem_line(path, e))
                    continue
                by_dir.setdefault(path.parent, []).append(_Found(folder, path, info, real))
        wanted: list[tuple[_Found, str, Path | None]] = []
        for files in by_dir.values():
            mmprojs = [f.path for f in files if f.info.is_mmproj]
            models = [f for f in files if not f.info.is_mmproj]
            paths = [f.path for f in models]
            for f in models:
                if f.real in skipped:
                    continue
                key = model_key(f.path, f.folder)
                if len(models) > 1 and lmstudio_layout(f.path, f.folder):
                    key += "@" + (_quant(f) or f.path.stem).lower()
                wanted.append((f, key, pick_mmproj_path(f.path, mmprojs, paths)))
        used = {k.casefold() for k in taken}
        for f, key, mmproj in sorted(wanted, key=lambda w: str(w[0].path)):
            unique, n = key, 1
            while unique.casefold() in used:
                n += 1
                unique = f"{key}-{n}"
            used.add(unique.casefold())
            result.models.append(
                LocalModel(
                    key=unique,
                    path=f.path,
                    mmproj=mmproj,
                    aliases=tuple(a for a in (f.path.stem, f.path.name) if a != unique),
                    info=f.info,
                    type=f.info.model_type,
                    quant=_quant(f),
                    folder=f.folder,
                )
            )
        return result


def _quant(f: _Found) -> str | None:
    return f.info.quantization or quant_from_name(f.path)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()
