"""What the API tells about a GGUF file, read from its header only.

``gguf.GGUFReader`` maps the file lazily (``np.memmap``) but walks every element of every
array and builds a view on every tensor. ``HeaderReader`` keeps the package's parser and
changes two steps: long arrays (the tokenizer's 150 000 tokens) are stepped over without
being decoded, and no tensor views are built, so the tensor data is never touched.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, LlamaFileType

log = logging.getLogger(__name__)

SKIP_ARRAYS_LONGER_THAN = 64
_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1,
    GGUFValueType.INT8: 1,
    GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2,
    GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4,
    GGUFValueType.INT32: 4,
    GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8,
    GGUFValueType.INT64: 8,
    GGUFValueType.FLOAT64: 8,
}


class HeaderReader(GGUFReader):
    """A ``GGUFReader`` that reads the key/value metadata and the tensor table, nothing more."""

    tensor_table: list

    def _get_field_parts(self, orig_offs: int, raw_type: int):
        if GGUFValueType(raw_type) == GGUFValueType.ARRAY and self.byte_order == "I":
            itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            count = int(alen[0])
            skipped = self._skip(orig_offs + 12, GGUFValueType(int(itype[0])), count)
            if count > SKIP_ARRAYS_LONGER_THAN and skipped is not None:
                return 12 + skipped, [itype, alen], [], [GGUFValueType.ARRAY]
        return super()._get_field_parts(orig_offs, raw_type)

    def _skip(self, offs: int, itype: GGUFValueType, count: int) -> int | None:
        """Bytes taken by ``count`` items of ``itype`` at ``offs``; None for nested arrays."""
        if itype in _SCALAR_SIZES:
            return _SCALAR_SIZES[itype] * count
        if itype != GGUFValueType.STRING:
            return None
        buf = memoryview(self.data)
        pos = offs
        for _ in range(count):
            (n,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + n
        return pos - offs

    def _build_tensors(self, start_offs: int, fields: list) -> None:
        self.tensor_table = fields  # names, shapes and types; no views on the data


@dataclass(frozen=True)
class GGUFInfo:
    path: str
    size_bytes: int
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

    @property
    def quantization(self) -> str | None:
        if self.file_type is None:
            return None
        try:
            name = LlamaFileType(self.file_type).name
        except ValueError:
            return None
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")

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
        return "llm"

    def kv_cache_bytes(self, ctx: int, bytes_per_value: int = 2) -> int:
        """K and V for every layer at context ``ctx`` (f16 by default)."""
        if not (self.block_count and self.head_count_kv):
            return 0
        head = self.embedding_length // self.head_count if self.head_count else 0
        k = self.key_length or head
        v = self.value_length or head
        return self.block_count * ctx * self.head_count_kv * (k + v) * bytes_per_value


def _scalar(reader: GGUFReader, key: str) -> int | str | None:
    field = reader.get_field(key)
    if field is None or not field.data:
        return None
    try:
        value = field.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return int(value)
    return None


def _int(reader: GGUFReader, key: str) -> int | None:
    v = _scalar(reader, key)
    return v if isinstance(v, int) else None


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read ``path``'s header; raises ``ValueError``/``OSError`` for a file that is not GGUF."""
    path = Path(path)
    size = path.stat().st_size
    reader = HeaderReader(path)
    arch = _scalar(reader, "general.architecture")
    arch = arch if isinstance(arch, str) else None
    name = _scalar(reader, "general.name")

    def a(suffix: str) -> int | None:
        return _int(reader, f"{arch}.{suffix}") if arch else None

    n_params = 0
    tensor_bytes = 0
    for field in reader.tensor_table:
        dims, raw_type = field.parts[3], field.parts[4]
        n = int(np.prod(dims.astype(np.int64)))
        n_params += n
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(int(raw_type[0]))]
        except (ValueError, KeyError):
            continue
        tensor_bytes += n * type_size // block
    return GGUFInfo(
        path=str(path),
        size_bytes=size,
        architecture=arch,
        name=name if isinstance(name, str) else None,
        file_type=_int(reader, "general.file_type"),
        context_length=a("context_length"),
        block_count=a("block_count"),
        head_count=a("attention.head_count"),
        head_count_kv=a("attention.head_count_kv") or a("attention.head_count"),
        embedding_length=a("embedding_length"),
        key_length=a("attention.key_length"),
        value_length=a("attention.value_length"),
        n_params=n_params,
        tensor_bytes=tensor_bytes,
        tool_use="tools" in str(_scalar(reader, "tokenizer.chat_template") or ""),
    )


class InfoCache:
    """``read_gguf_info`` once per file version (path, size, mtime)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], GGUFInfo | None]] = {}

    def get(self, path: str) -> GGUFInfo | None:
        try:
            st = Path(path).stat()
        except OSError:
            return None
        stamp = (st.st_size, st.st_mtime_ns)
        hit = self._cache.get(path)
        if hit and hit[0] == stamp:
            return hit[1]
        try:
            info: GGUFInfo | None = read_gguf_info(path)
        except (ValueError, OSError, KeyError, struct.error, IndexError) as e:
            log.warning("Cannot read the GGUF header of %s: %s", path, e)
            info = None
        self._cache[path] = (stamp, info)
        return info
