"""What a GGUF file is, read from its header only: ``GGUFInfo``, for the first-run table,
the catalogue and the API alike, and the file names that go with it (shards, projectors,
quantization suffixes).

The header is read by ``app.core.discovery.gguf_header.read_header``, the one GGUF reader of
the app: it steps over the tokenizer's long arrays without decoding them and never touches
the tensor data (a 150 000-token vocabulary: about 30 ms, against about 45 ms for a
``gguf.GGUFReader`` subclass doing the same and seconds for the plain ``GGUFReader``; see
``bench/catalogue.py``).
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from app.core.discovery.gguf_header import (
    GGMLQuantizationType,
    GgufHeader,
    GgufReadError,
    LlamaFileType,
    gguf_constants,
    read_header,
)

log = logging.getLogger(__name__)
GGML_QUANT_SIZES = gguf_constants.GGML_QUANT_SIZES
PoolingType = gguf_constants.PoolingType

# llama.cpp's architectures that only embed (gguf's MODEL_ARCH names). XLM-RoBERTa models
# (bge-m3, bge-reranker) are converted to "bert".
EMBEDDING_ARCHS = frozenset(
    {
        "bert",
        "modern-bert",
        "nomic-bert",
        "nomic-bert-moe",
        "neo-bert",
        "jina-bert-v2",
        "jina-bert-v3",
        "eurobert",
        "t5encoder",
        "gemma-embedding",
        "llama-embed",
    }
)
_EMBEDDING_POOLING = frozenset({PoolingType.MEAN, PoolingType.CLS, PoolingType.LAST})
_RERANK_NAME = re.compile(r"re-?rank", re.IGNORECASE)
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_SHARD_TAIL = re.compile(r"-\d{5}-of-\d{5}$", re.IGNORECASE)
QUANT_SUFFIX = re.compile(
    r"[-_.](f16|bf16|f32|fp16|fp32|q\d+(_[a-z0-9]+)*|iq\d+\w*)$", re.IGNORECASE
)


def is_mmproj_name(path: Path) -> bool:
    return "mmproj" in path.name.lower()


def shard_info(path: Path) -> tuple[int, int] | None:
    """(number, count) for ``name-00001-of-00003.gguf``; None for a single file."""
    m = _SHARD.match(path.name)
    return (int(m["no"]), int(m["count"])) if m else None


def model_files(path: str | Path) -> list[Path]:
    """``path``, or every shard of the split model whose first shard it is."""
    path = Path(path)
    m = _SHARD.match(path.name)
    if not m or int(m["no"]) != 1:
        return [path]
    count = int(m["count"])
    return [path.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def gguf_stem(path: Path) -> str:
    """The file name without ``.gguf`` (in any case)."""
    return path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.stem


def quant_from_name(path: Path) -> str | None:
    """``Qwen3-4B-Q4_K_M.gguf`` -> ``Q4_K_M``; None when the name does not say."""
    m = QUANT_SUFFIX.search(_SHARD_TAIL.sub("", gguf_stem(path)))
    return m.group(1).upper() if m else None


@dataclass(frozen=True)
class GGUFInfo:
    path: str
    size_bytes: int  # every shard of a split model together
    architecture: str | None
    name: str | None
    file_type: int | None
    context_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    embedding_length: int | None
    key_length: int | None
    value_length: int | None
    n_params: int
    tensor_bytes: int
    tool_use: bool = False  # the chat template takes tools
    pooling_type: int | None = None  # llama.cpp's enum: 0 none, 1 mean, 2 cls, 3 last, 4 rank
    general_type: str | None = None  # ``general.type``: "model", "mmproj", "adapter" ...
    size_label: str | None = None  # ``general.size_label``: "8B", "30B-A3B"
    tensor_type: str | None = None  # the tensor type holding the most weights ("Q4_K")
    shards: int = 1  # files of a split model

    @property
    def quantization(self) -> str | None:
        """``Q4_K_M``, ``F16``: what the header's file type says, else the file name, else
        the tensor type holding the most weights (old files name no file type)."""
        if self.file_type is not None:
            try:
                name = LlamaFileType(self.file_type).name
            except ValueError:
                name = ""
            if name:
                return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        return quant_from_name(Path(self.path)) or self.tensor_type

    @property
    def params_label(self) -> str:
        """``general.size_label`` ("8B"), else the counted parameters ("8.19B"), else "?"."""
        return self.size_label or self.params_string or "?"

    @property
    def bits_per_weight(self) -> float | None:
        if not self.n_params:
            return None
        return round(self.tensor_bytes * 8 / self.n_params, 2)

    @property
    def params_string(self) -> str | None:
        n = self.n_params
        if not n:
            return None
        for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
            if n >= div:
                return f"{n / div:.3g}{unit}"
        return str(n)

    @property
    def model_type(self) -> str:
        """ "reranker", "embedding" or "llm", as llama-server would serve the file."""
        named = " ".join(s for s in (self.general_type, self.name, Path(self.path).name) if s)
        if self.pooling_type == PoolingType.RANK or _RERANK_NAME.search(named):
            return "reranker"
        if self.architecture in EMBEDDING_ARCHS or self.pooling_type in _EMBEDDING_POOLING:
            return "embedding"
        return "llm"

    @property
    def is_mmproj(self) -> bool:
        """A multimodal projector (``--mmproj``), not a model of its own."""
        return (
            self.architecture == "clip"
            or self.general_type == "mmproj"
            or is_mmproj_name(Path(self.path))
        )

    def kv_cache_bytes(self, ctx: int, bytes_per_value: float = 2) -> int:
        """K and V for every layer at context ``ctx`` (f16 by default; q8_0: 34/32)."""
        if not (self.block_count and self.head_count_kv):
            return 0
        head = self.embedding_length // self.head_count if self.head_count else 0
        k = self.key_length or head
        v = self.value_length or head
        return int(self.block_count * ctx * self.head_count_kv * (k + v) * bytes_per_value)


def _int(header: GgufHeader, key: str) -> int | None:
    v = header.get(key)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    return None


def _str(header: GgufHeader, key: str) -> str | None:
    v = header.get(key)
    return v if isinstance(v, str) else None


def _weights_by_type(headers: list[GgufHeader]) -> dict[int, int]:
    """The tensors' element counts added up per ggml type, over every shard's header."""
    by_type: dict[int, int] = {}
    for h in headers:
        for t in h.tensors:
            by_type[t.ggml_type] = by_type.get(t.ggml_type, 0) + t.n_elements
    return by_type


def _bytes_of(by_type: dict[int, int]) -> int:
    """The tensor data's size (a quantized tensor holds whole blocks: exact per type)."""
    total = 0
    for ggml_type, n in by_type.items():
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        except (ValueError, KeyError):
            continue
        total += n * type_size // block
    return total


def _type_name(ggml_type: int) -> str:
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read ``path``'s header (every shard's, for a split model); raises ``GgufReadError``
    (a ``ValueError``) or ``OSError`` for a file that is not a readable GGUF."""
    path = Path(path)
    files = model_files(path)
    for f in files[1:]:
        if not f.is_file():
            raise GgufReadError(f"{path} is split in {len(files)} files but {f.name} is missing.")
    headers = [read_header(f) for f in files]
    return info_from_headers(path, headers, sum(f.stat().st_size for f in files))


def info_from_headers(path: str | Path, headers: list[GgufHeader], size_bytes: int) -> GGUFInfo:
    """The ``GGUFInfo`` of a model whose headers (its first shard's first) are read, and
    whose files hold ``size_bytes`` together: a file on disk, or one on the hub whose
    header was read with a ranged request."""
    first = headers[0]
    arch = _str(first, "general.architecture")

    def a(suffix: str) -> int | None:
        return _int(first, f"{arch}.{suffix}") if arch else None

    by_type = _weights_by_type(headers)
    return GGUFInfo(
        path=str(path),
        size_bytes=size_bytes,
        architecture=arch,
        name=_str(first, "general.name"),
        file_type=_int(first, "general.file_type"),
        context_length=a("context_length"),
        block_count=a("block_count"),
        head_count=a("attention.head_count"),
        head_count_kv=a("attention.head_count_kv") or a("attention.head_count"),
        embedding_length=a("embedding_length"),
        key_length=a("attention.key_length"),
        value_length=a("attention.value_length"),
        n_params=sum(by_type.values()),
        tensor_bytes=_bytes_of(by_type),
        tool_use="tools" in (_str(first, "tokenizer.chat_template") or ""),
        pooling_type=a("pooling_type"),
        general_type=_str(first, "general.type"),
        size_label=_str(first, "general.size_label"),
        tensor_type=_type_name(max(by_type, key=by_type.__getitem__)) if by_type else None,
        shards=len(headers),
    )


_Stamp = tuple[tuple[int, int], ...]


class InfoCache:
    """``read_gguf_info`` once per file version: path, size and mtime (of every shard).
    Unreadable files are remembered too, with the reason, until they change."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[_Stamp, GGUFInfo | str]] = {}
        self.reads = 0  # headers read (not answered from the cache), for tests and benchmarks

    def read(self, path: str | Path) -> GGUFInfo:
        """The header of ``path``; raises ``GgufReadError`` (also when cached) or ``OSError``
        (the file is missing or cannot be opened)."""
        key = str(path)
        stamp = tuple((st.st_size, st.st_mtime_ns) for st in _stats(path))
        hit = self._cache.get(key)
        if hit and hit[0] == stamp:
            found = hit[1]
        else:
            self.reads += 1
            try:
                found = read_gguf_info(path)
            except (GgufReadError, ValueError, struct.error) as e:
                log.warning("Cannot read the GGUF header of %s: %s", path, e)
                found = str(e)
            self._cache[key] = (stamp, found)
        if isinstance(found, str):
            raise GgufReadError(found)
        return found

    def get(self, path: str | Path) -> GGUFInfo | None:
        """``read``, or None for a missing or unreadable file (logged when first read)."""
        try:
            return self.read(path)
        except (GgufReadError, OSError):
            return None


def _stats(path: str | Path) -> list:
    files = model_files(path)
    out = [files[0].stat()]
    for f in files[1:]:
        try:
            out.append(f.stat())
        except OSError:
            pass  # read_gguf_info says which shard is missing
    return out
