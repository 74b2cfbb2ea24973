"""Discover GGUF models in folders: read each header, pair vision models with their mmproj."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .folders import ADDED, ModelFolder, find_gguf_files
from .gguf_header import GgufReadError
from .model_info import ModelInfo, read_model_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveredModel:
    info: ModelInfo
    source: str  # "LM Studio", "Hugging Face cache", ...
    key: str  # "publisher/model" as LM Studio or Hugging Face name it, else the file stem
    mmproj: ModelInfo | None = None

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def vision(self) -> bool:
        return self.mmproj is not None


@dataclass
class DiscoveryResult:
    models: list[DiscoveredModel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable files, one line each
    folders: list[ModelFolder] = field(default_factory=list)  # the folders that exist


def model_key(path: Path, folder: ModelFolder | Path) -> str:
    """The model's key, as the first-run table shows it and the API lists it: for the
    Hugging Face cache (``models--org--name/snapshots/<rev>/x.gguf``) ``org/name``; for LM
    Studio's layout (``<publisher>/<model-folder>/<file>.gguf`` right under the folder)
    ``publisher/model-folder`` lower-cased, without a trailing ``-GGUF``; else the file stem.
    The API's scanner adds ``@quant`` for a folder of several quantizations."""
    rel = _rel(path, folder)
    if rel and rel[0].startswith("models--") and "snapshots" in rel:
        return rel[0].removeprefix("models--").replace("--", "/", 1)
    if lmstudio_layout(path, folder):
        return lmstudio_key(rel[0], rel[1])
    return path.stem


def _rel(path: Path, folder: ModelFolder | Path) -> tuple[str, ...]:
    base = folder.path if isinstance(folder, ModelFolder) else folder
    try:
        return path.relative_to(base).parts
    except ValueError:
        return ()


def lmstudio_layout(path: Path, folder: ModelFolder | Path) -> bool:
    """``path`` is ``<publisher>/<model-folder>/<file>.gguf`` right under ``folder``."""
    rel = _rel(path, folder)
    return len(rel) == 3 and not rel[0].startswith("models--")


def lmstudio_key(publisher: str, folder: str) -> str:
    """``lmstudio-community``, ``Qwen3-4B-GGUF`` -> ``lmstudio-community/qwen3-4b``."""
    key = f"{publisher}/{folder}".lower()
    return key.removesuffix("-gguf")


_QUANT_SUFFIX = re.compile(
    r"[-_.](f16|bf16|f32|fp16|fp32|q\d+(_[a-z0-9]+)*|iq\d+\w*)$", re.IGNORECASE
)
_GENERIC = re.compile(r"(^|[-_.])(mmproj|model|vision|projector)(?=$|[-_.])", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_. ]+")
_SHARD_TAIL = re.compile(r"-\d{5}-of-\d{5}$", re.IGNORECASE)


def _norm(text: str) -> str:
    return _SEPARATORS.sub("", text.lower())


def _strip_quant(stem: str) -> str:
    while True:
        shorter = _QUANT_SUFFIX.sub("", stem)
        if shorter == stem:
            return stem
        stem = shorter


def _stem(path: Path) -> str:
    return path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.stem


def mmproj_stem(mmproj: Path) -> str:
    """What names the model in an mmproj file name, without separators: ``mmproj-Qwen3VL-8B-
    F16.gguf`` -> ``qwen3vl8b``; ``mmproj-model-f16.gguf`` -> "" (says nothing)."""
    return _norm(_GENERIC.sub("-", _strip_quant(_stem(mmproj))))


def _one_family(models: list[Path]) -> bool:
    """True when every model in the folder is a variant (quantization) of one model."""
    stems = sorted((_norm(_strip_quant(_stem(m))) for m in models), key=len)
    return all(s.startswith(stems[0]) for s in stems) if stems else True


def pick_mmproj_path(model: Path, mmprojs: list[Path], models: list[Path]) -> Path | None:
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


def pick_mmproj(
    model: ModelInfo, mmprojs: list[ModelInfo], models: list[ModelInfo]
) -> ModelInfo | None:
    """``pick_mmproj_path`` for the first-run table's ``ModelInfo``s."""
    by_path = {m.path: m for m in mmprojs}
    found = pick_mmproj_path(model.path, list(by_path), [m.path for m in models])
    return by_path[found] if found else None


def quant_from_name(path: Path) -> str | None:
    """``Qwen3-4B-Q4_K_M.gguf`` -> ``Q4_K_M``; None when the name does not say."""
    stem = _SHARD_TAIL.sub("", _stem(path))
    m = _QUANT_SUFFIX.search(stem)
    return m.group(1).upper() if m else None


def scan_folders(folders: list[ModelFolder]) -> DiscoveryResult:
    """The blocking scan (run it in an executor): walk, read headers, pair."""
    result = DiscoveryResult()
    seen: set[Path] = set()
    for folder in folders:
        if not folder.path.is_dir():
            continue
        result.folders.append(folder)
        by_dir: dict[Path, list[ModelInfo]] = {}
        for path in find_gguf_files(folder.path):
            try:
                real = path.resolve()
            except OSError:
                continue
            if real in seen:
                continue
            seen.add(real)
            try:
                info = read_model_info(path)
            except (GgufReadError, OSError) as e:
                msg = str(e) if isinstance(e, GgufReadError) else f"{path}: {e.strerror or e}"
                result.problems.append(msg)
                log.info("Skipped %s", msg)
                continue
            by_dir.setdefault(path.parent, []).append(info)
        for infos in by_dir.values():
            mmprojs = [i for i in infos if i.is_mmproj]
            models = [i for i in infos if not i.is_mmproj]
            for info in models:
                result.models.append(
                    DiscoveredModel(
                        info=info,
                        source=folder.source,
                        key=model_key(info.path, folder),
                        mmproj=pick_mmproj(info, mmprojs, models),
                    )
                )
    return result


async def discover_models(folders: list[ModelFolder]) -> DiscoveryResult:
    """``scan_folders`` off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, scan_folders, list(folders))


def user_folder(path: str | os.PathLike[str]) -> ModelFolder:
    return ModelFolder(Path(path).expanduser(), ADDED)
