"""One scan of model folders, for the first-run table and the catalogue alike: walk them for
GGUF files, read each header (cached by path, size and mtime: a second scan of unchanged
files reads none), pair each model with its projector, and give each one key."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .folders import ADDED, ModelFolder, find_gguf_files
from .gguf_header import GgufReadError
from .gguf_info import QUANT_SUFFIX, GGUFInfo, InfoCache, gguf_stem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundModel:
    """A GGUF model on disk (a projector is no model of its own: it is a model's ``mmproj``)."""

    key: str  # what clients load it by; unique within one scan (``unique_key``)
    path: Path  # the model file (the first shard of a split model)
    info: GGUFInfo
    mmproj: Path | None  # the paired projector: a vision model
    aliases: tuple[str, ...]  # the file stem and the file name (not the key)
    folder: Path  # the scanned folder it was found under
    source: str  # where that folder comes from: "LM Studio", "Hugging Face cache", ...

    @property
    def type(self) -> str:
        """ "llm", "embedding" or "reranker" (``vision`` says whether it sees images)."""
        return self.info.model_type

    @property
    def vision(self) -> bool:
        return self.mmproj is not None

    @property
    def quant(self) -> str | None:
        return self.info.quantization


@dataclass
class ScanResult:
    models: list[FoundModel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per unreadable file
    folders: list[ModelFolder] = field(default_factory=list)  # the folders that exist


def model_key(path: Path, folder: Path) -> str:
    """The model's key before it is made unique: for the Hugging Face cache
    (``models--org--name/snapshots/<rev>/x.gguf``) ``org/name``; for LM Studio's layout
    (``<publisher>/<model-folder>/<file>.gguf`` right under the folder)
    ``publisher/model-folder`` lower-cased, without a trailing ``-GGUF``; else the file stem."""
    rel = _rel(path, folder)
    if rel and rel[0].startswith("models--") and "snapshots" in rel:
        return rel[0].removeprefix("models--").replace("--", "/", 1)
    if lmstudio_layout(path, folder):
        return lmstudio_key(rel[0], rel[1])
    return path.stem


def _rel(path: Path, folder: Path) -> tuple[str, ...]:
    try:
        return path.relative_to(folder).parts
    except ValueError:
        return ()


def lmstudio_layout(path: Path, folder: Path) -> bool:
    """``path`` is ``<publisher>/<model-folder>/<file>.gguf`` right under ``folder``."""
    rel = _rel(path, folder)
    return len(rel) == 3 and not rel[0].startswith("models--")


def lmstudio_key(publisher: str, folder: str) -> str:
    """``lmstudio-community``, ``Qwen3-4B-GGUF`` -> ``lmstudio-community/qwen3-4b``."""
    key = f"{publisher}/{folder}".lower()
    return key.removesuffix("-gguf")


_GENERIC = re.compile(r"(^|[-_.])(mmproj|model|vision|projector)(?=$|[-_.])", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_. ]+")


def _norm(text: str) -> str:
    return _SEPARATORS.sub("", text.lower())


def _strip_quant(stem: str) -> str:
    while True:
        shorter = QUANT_SUFFIX.sub("", stem)
        if shorter == stem:
            return stem
        stem = shorter


def mmproj_stem(mmproj: Path) -> str:
    """What names the model in an mmproj file name, without separators: ``mmproj-Qwen3VL-8B-
    F16.gguf`` -> ``qwen3vl8b``; ``mmproj-model-f16.gguf`` -> "" (says nothing)."""
    return _norm(_GENERIC.sub("-", _strip_quant(gguf_stem(mmproj))))


def _one_family(models: list[Path]) -> bool:
    """True when every model in the folder is a variant (quantization) of one model."""
    stems = sorted((_norm(_strip_quant(gguf_stem(m))) for m in models), key=len)
    return all(s.startswith(stems[0]) for s in stems) if stems else True


def pick_mmproj(model: Path, mmprojs: list[Path], models: list[Path]) -> Path | None:
    """The mmproj beside ``model`` that belongs to it: one whose name names this model
    (``qwen3-vl-8b-mmproj.gguf`` for ``qwen3-vl-8b-Q4_K_M.gguf``), or, when the folder holds
    variants of one model only (LM Studio's folder per model), a generically named one
    (``mmproj-model-f16.gguf``). F16 is preferred among equals. ``models`` are the folder's
    model files (not mmproj), ``model`` among them."""
    name = _norm(model.stem)
    matching: list[tuple[int, int, Path]] = []
    for m in mmprojs:
        stem = mmproj_stem(m)
        f16 = 1 if re.search(r"(?<!b)f16", m.name.lower()) else 0
        if stem and name.startswith(stem):
            matching.append((len(stem), f16, m))
        elif _one_family(models):
            matching.append((0, f16, m))
    if not matching:
        return None
    return max(matching, key=lambda t: (t[0], t[1], t[2].name))[2]


def unique_key(key: str, used: set[str]) -> str:
    """``key``, else ``key-2``, ``key-3``, ... the first not in ``used`` (casefolded keys:
    clients may name a model in any case); it is added to ``used``."""
    unique, n = key, 1
    while unique.casefold() in used:
        n += 1
        unique = f"{key}-{n}"
    used.add(unique.casefold())
    return unique


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
    folder: ModelFolder
    order: int  # the folder's place in the scan
    path: Path
    info: GGUFInfo


class ModelScanner:
    """Scans model folders; keeps its header cache from one scan to the next."""

    def __init__(self, cache: InfoCache | None = None) -> None:
        self.cache = cache if cache is not None else InfoCache()

    def scan(self, folders: Sequence[ModelFolder | Path]) -> ScanResult:
        """Every model under ``folders`` (blocking: run it off the event loop), the first
        folder's first: a file in two folders (one inside the other, or a link) is listed
        once. A bare path is an added folder."""
        result = ScanResult()
        seen: set[Path] = set()
        by_dir: dict[Path, list[_Found]] = {}
        for order, folder in enumerate(_as_folders(folders)):
            if not folder.path.is_dir():
                continue
            result.folders.append(folder)
            for path in find_gguf_files(folder.path):
                real = _resolve(path)
                if real in seen:
                    continue
                seen.add(real)
                try:
                    info = self.cache.read(path)
                except (GgufReadError, OSError) as e:
                    result.problems.append(problem_line(path, e))
                    continue
                by_dir.setdefault(path.parent, []).append(_Found(folder, order, path, info))
        wanted: list[tuple[_Found, str, Path | None]] = []
        for files in by_dir.values():
            mmprojs = [f.path for f in files if f.info.is_mmproj]
            models = [f for f in files if not f.info.is_mmproj]
            paths = [f.path for f in models]
            for f in models:
                key = model_key(f.path, f.folder.path)
                if len(models) > 1 and lmstudio_layout(f.path, f.folder.path):
                    key += "@" + (f.info.quantization or f.path.stem).lower()
                wanted.append((f, key, pick_mmproj(f.path, mmprojs, paths)))
        used: set[str] = set()
        for f, key, mmproj in sorted(wanted, key=lambda w: (w[0].order, str(w[0].path))):
            unique = unique_key(key, used)
            result.models.append(
                FoundModel(
                    key=unique,
                    path=f.path,
                    info=f.info,
                    mmproj=mmproj,
                    aliases=tuple(a for a in (f.path.stem, f.path.name) if a != unique),
                    folder=f.folder.path,
                    source=f.folder.source,
                )
            )
        return result


def _as_folders(folders: Sequence[ModelFolder | Path]) -> list[ModelFolder]:
    return [
        f if isinstance(f, ModelFolder) else ModelFolder(Path(f).expanduser(), ADDED)
        for f in folders
    ]


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()
