"""A hub repository's GGUF files as models: shards joined, quantization named, mmproj paired.

The pairing and the quantization come from the scan of local folders
(``app.core.discovery.scan``), so a model is paired with the same projector before it is
downloaded as after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from app.core.discovery.gguf_info import is_mmproj_name, quant_from_name, shard_info
from app.core.discovery.scan import pick_mmproj

# The quantizations picked when none is named, best first: the seed recommends Q4_K_M.
PREFERRED_QUANTS = ("Q4_K_M", "Q4_K_S", "Q4_K_XL", "Q5_K_M", "Q4_0", "MXFP4", "Q6_K", "Q8_0")
_OTHER_QUANT = re.compile(r"(?:^|[-_.])(mxfp4|q\d_k_xl|iq\d_\w+|tq\d_\d)(?:[-_.]|$)", re.IGNORECASE)
_SHARD_TAIL = re.compile(r"-\d{5}-of-\d{5}$", re.IGNORECASE)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository on the hub."""

    path: str  # in the repository, e.g. "Q8_0/Model-Q8_0-00001-of-00002.gguf"
    size: int
    sha256: str | None  # the LFS SHA-256 the hub publishes; None when it publishes none

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def is_mmproj(self) -> bool:
        return is_mmproj_name(PurePosixPath(self.name))  # type: ignore[arg-type]

    @property
    def quant(self) -> str | None:
        p = PurePosixPath(self.name)
        found = quant_from_name(p)  # type: ignore[arg-type]
        if found:
            return found
        m = _OTHER_QUANT.search(_SHARD_TAIL.sub("", p.name.removesuffix(".gguf")))
        return m.group(1).upper() if m else None


@dataclass(frozen=True)
class RemoteModel:
    """A model as llama-server loads it: one file, or every shard of a split one, with the
    projector that makes it a vision model."""

    repo: str
    files: tuple[RemoteFile, ...]  # the shards in order; one for a single file
    mmproj: RemoteFile | None = None

    @property
    def name(self) -> str:
        return self.files[0].name

    @property
    def quant(self) -> str | None:
        return self.files[0].quant

    @property
    def family(self) -> str:
        """The model's name without quantization or shard number: what its variants share."""
        stem = _SHARD_TAIL.sub("", self.name.removesuffix(".gguf"))
        q = self.quant
        if q and stem.upper().endswith(q):
            stem = stem[: -len(q)].rstrip("-_.")
        return stem or self.name

    @property
    def size(self) -> int:
        """The model's own files (every shard)."""
        return sum(f.size for f in self.files)

    @property
    def total_size(self) -> int:
        """What a download of it brings: the model and its projector."""
        return self.size + (self.mmproj.size if self.mmproj else 0)

    @property
    def all_files(self) -> tuple[RemoteFile, ...]:
        """Every file to download, the projector first (it is never listed as a model)."""
        return ((self.mmproj,) if self.mmproj else ()) + self.files

    def label(self) -> str:
        shards = f" ({len(self.files)} files)" if len(self.files) > 1 else ""
        return f"{self.name}{shards}"


@dataclass
class RepoFiles:
    """A repository's models at one commit."""

    repo: str
    commit: str
    models: list[RemoteModel] = field(default_factory=list)
    mmprojs: list[RemoteFile] = field(default_factory=list)
    gated: bool = False
    problems: list[str] = field(default_factory=list)  # e.g. a split model with a shard missing

    def groups(self) -> dict[str, list[RemoteModel]]:
        """The models by family (a model and its quantizations), smallest first."""
        out: dict[str, list[RemoteModel]] = {}
        for m in self.models:
            out.setdefault(m.family, []).append(m)
        for models in out.values():
            models.sort(key=lambda m: m.size)
        return out

    def pick(self, *, file: str | None = None, quant: str | None = None) -> RemoteModel:
        """The model a request names: by ``file`` (its name or path, any shard), by
        ``quant``, else the preferred quantization (``PREFERRED_QUANTS``), else the
        smallest. Raises ``LookupError`` with the choices in its message."""
        if not self.models:
            raise LookupError(f"{self.repo} has no GGUF model files.")
        if file:
            wanted = file.strip().lower()
            for m in self.models:
                if any(wanted in (f.path.lower(), f.name.lower()) for f in m.files):
                    return m
            raise LookupError(
                f"{self.repo} has no model file {file!r}. Its model files: {self.choices()}."
            )
        if quant:
            wanted = quant.strip().upper()
            found = [m for m in self.models if (m.quant or "").upper() == wanted]
            found = found or [m for m in self.models if wanted in m.name.upper()]
            if not found:
                quants = sorted({m.quant for m in self.models if m.quant})
                raise LookupError(
                    f"{self.repo} has no {wanted} file. Its quantizations: "
                    f"{', '.join(quants) or 'none named'}."
                )
            return min(found, key=lambda m: m.size)
        for q in PREFERRED_QUANTS:
            found = [m for m in self.models if (m.quant or "").upper() == q]
            if found:
                return min(found, key=lambda m: m.size)
        return min(self.models, key=lambda m: m.size)

    def choices(self, limit: int = 12) -> str:
        names = [m.name for m in self.models]
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more


def group_files(repo: str, commit: str, files: list[RemoteFile], gated: bool = False) -> RepoFiles:
    """The GGUF models among ``files`` (a repository's listing)."""
    out = RepoFiles(repo=repo, commit=commit, gated=gated)
    ggufs = [
        f for f in files if f.path.lower().endswith(".gguf") and "imatrix" not in f.name.lower()
    ]
    out.mmprojs = [f for f in ggufs if f.is_mmproj]
    singles: list[tuple[RemoteFile, ...]] = []
    split: dict[tuple[str, str, int], dict[int, RemoteFile]] = {}
    for f in ggufs:
        if f.is_mmproj:
            continue
        shard = shard_info(PurePosixPath(f.name))  # type: ignore[arg-type]
        if shard is None:
            singles.append((f,))
            continue
        folder = str(PurePosixPath(f.path).parent)
        stem = _SHARD_TAIL.sub("", f.name.removesuffix(".gguf"))
        split.setdefault((folder, stem, shard[1]), {})[shard[0]] = f
    for (_folder, stem, count), parts in split.items():
        if sorted(parts) != list(range(1, count + 1)):
            missing = sorted(set(range(1, count + 1)) - set(parts))
            out.problems.append(f"{stem} is split in {count} files but {missing} are missing.")
            continue
        singles.append(tuple(parts[i] for i in range(1, count + 1)))
    names = [PurePosixPath(fs[0].name) for fs in singles]
    mm_names = {PurePosixPath(f.name): f for f in out.mmprojs}
    for fs in sorted(singles, key=lambda fs: fs[0].path):
        found = pick_mmproj(PurePosixPath(fs[0].name), list(mm_names), names)  # type: ignore[arg-type]
        out.models.append(RemoteModel(repo, fs, mm_names[found] if found else None))
    return out
