"""Where GGUF models live (the usual places, or ``MODEL_DIRS``), and walking those folders
for ``*.gguf`` files."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .gguf_info import shard_info

LMSTUDIO = "LM Studio"
LLAMA_CPP = "llama.cpp cache"
HUGGING_FACE = "Hugging Face cache"
ADDED = "added folder"
SETTING = "MODEL_DIRS"


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    source: str


def default_folders(
    home: Path | None = None,
    environ: dict[str, str] | os._Environ[str] | None = None,
    platform: str | None = None,
) -> list[ModelFolder]:
    """LM Studio's model folders, llama.cpp's download cache and the Hugging Face cache."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or Path.home())
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else home / ".cache"
    hf_home = Path(env["HF_HOME"]) if env.get("HF_HOME") else cache / "huggingface"
    hf_hub = Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE") else hf_home / "hub"
    llama_cache = Path(env["LLAMA_CACHE"]) if env.get("LLAMA_CACHE") else cache / "llama.cpp"
    candidates = [
        ModelFolder(home / ".lmstudio" / "models", LMSTUDIO),
        ModelFolder(home / ".cache" / "lm-studio" / "models", LMSTUDIO),
        ModelFolder(llama_cache, LLAMA_CPP),
        ModelFolder(hf_hub, HUGGING_FACE),
    ]
    if (platform or sys.platform) == "darwin":
        candidates.append(ModelFolder(home / "Library" / "Caches" / "llama.cpp", LLAMA_CPP))
    out: list[ModelFolder] = []
    seen: set[Path] = set()
    for c in candidates:
        key = c.path.expanduser()
        if key not in seen:
            seen.add(key)
            out.append(ModelFolder(key, c.source))
    return out


def user_folder(path: str | os.PathLike[str]) -> ModelFolder:
    """A folder the user added (``~`` expanded)."""
    return ModelFolder(Path(path).expanduser(), ADDED)


def model_dirs(
    value: str,
    *,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> list[ModelFolder]:
    """The folders ``MODEL_DIRS`` names, split like PATH (``;`` on Windows, ``:`` elsewhere),
    ``~`` expanded, empty parts dropped; empty: the usual places (``default_folders``, LM
    Studio's first). ``platform`` is a ``sys.platform`` value; ``home`` and ``environ``
    default to the user's."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    plat = platform or sys.platform
    sep = os.pathsep if platform is None else (";" if plat.startswith("win") else ":")
    out: list[ModelFolder] = []
    for part in value.split(sep):
        part = part.strip()
        if not part:
            continue
        if part == "~" or part.startswith(("~/", "~\\")):
            path = home / part[2:] if len(part) > 1 else home
        else:
            path = Path(part)
        if path not in {f.path for f in out}:
            out.append(ModelFolder(path, SETTING))
    return out or default_folders(home, dict(env), plat)


def find_gguf_files(folder: Path, max_depth: int = 8) -> list[Path]:
    """Every ``*.gguf`` under ``folder`` (files reached through symlinks count, as in the
    Hugging Face cache; linked folders are not followed). Later shards of a split model are
    left out: the first shard stands for the model."""
    found: list[Path] = []
    if not folder.is_dir():
        return found
    base_depth = len(folder.parts)
    for root, dirs, files in os.walk(folder, onerror=lambda _e: None):
        if len(Path(root).parts) - base_depth >= max_depth:
            dirs[:] = []
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "blobs")
        for name in sorted(files):
            if not name.lower().endswith(".gguf") or name.startswith("."):
                continue
            path = Path(root) / name
            shard = shard_info(path)
            if shard and shard[0] != 1:
                continue
            if path.is_file():  # a dangling link in a half-downloaded cache is skipped
                found.append(path)
    return found


def folder_signature(folders: list[Path], max_depth: int = 8) -> dict[str, int]:
    """``{folder: mtime}`` of every folder the scan walks (as ``find_gguf_files`` walks
    them): a file added, removed or renamed in one changes its folder's mtime. One look at
    each folder, no file opened: cheap enough to repeat every few seconds."""
    out: dict[str, int] = {}
    for folder in folders:
        if not folder.is_dir():
            out[str(folder)] = -1
            continue
        base_depth = len(folder.parts)
        for root, dirs, _files in os.walk(folder, onerror=lambda _e: None):
            try:
                out[root] = os.stat(root).st_mtime_ns
            except OSError:
                continue
            if len(Path(root).parts) - base_depth >= max_depth:
                dirs[:] = []
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "blobs"]
    return out
