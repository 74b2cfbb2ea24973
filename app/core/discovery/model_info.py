"""What the set-up dialog shows about one GGUF file, read from its header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .gguf_header import GgufHeader, read_header

_SHARD = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    architecture: str
    parameters: int  # counted from the tensor shapes in the header
    size_label: str  # "8B" from the file, else estimated from ``parameters``
    quantization: str
    context_length: int | None
    size_bytes: int  # all shards together
    shards: int = 1
    is_mmproj: bool = False


def is_mmproj_name(path: Path) -> bool:
    return "mmproj" in path.name.lower()


def shard_info(path: Path) -> tuple[int, int] | None:
    """(number, count) for ``name-00001-of-00003.gguf``; None for a single file."""
    m = _SHARD.match(path.name)
    return (int(m["no"]), int(m["count"])) if m else None


def shard_paths(path: Path) -> list[Path]:
    m = _SHARD.match(path.name)
    if not m:
        return [path]
    count = int(m["count"])
    return [path.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def human_params(n: int) -> str:
    if n <= 0:
        return "?"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
    return str(n)


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def read_model_info(path: Path) -> ModelInfo:
    """Read ``path`` (and, for a split model, every shard's header). Raises GgufReadError/OSError."""
    parts = shard_paths(path)
    headers: list[GgufHeader] = [read_header(p) for p in parts]
    first = headers[0]
    arch = first.architecture or "?"
    ctx = first.get(f"{arch}.context_length")
    params = sum(h.parameter_count for h in headers)
    label = first.get("general.size_label")
    name = first.get("general.name") or path.stem
    return ModelInfo(
        path=path,
        name=str(name),
        architecture=arch,
        parameters=params,
        size_label=str(label) if label else human_params(params),
        quantization=first.file_type or first.dominant_tensor_type or "?",
        context_length=int(ctx) if isinstance(ctx, int) else None,
        size_bytes=sum(p.stat().st_size for p in parts),
        shards=len(parts),
        is_mmproj=is_mmproj_name(path) or arch == "clip",
    )
