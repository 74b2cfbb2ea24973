"""Read a GGUF file's header (metadata and tensor shapes) without touching the tensor data.

``gguf.GGUFReader`` parses every element of every array into numpy objects; a real model's
tokenizer arrays (150 000 tokens and as many merges) take it about 16 s per file. This
reader walks the same layout with the ``gguf`` package's own types and constants but skips
array contents, so it reads only the header bytes (a few MiB, through a memory map) in a few
tens of milliseconds, and needs no numpy. It is the app's one GGUF reader:
``app.core.discovery.gguf_info`` builds ``GGUFInfo`` from it.
"""

from __future__ import annotations

import functools
import importlib.util
import mmap
import struct
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


def _gguf_constants() -> ModuleType:
    """The ``gguf`` package's ``constants`` module (enums and tables, standard library only),
    loaded without the package: ``import gguf`` also imports numpy and every reader and
    writer, about 0.3 s at start-up that reading a header does not need."""
    if "gguf.constants" in sys.modules:
        return sys.modules["gguf.constants"]
    try:
        spec = importlib.util.find_spec("gguf")  # finds the package without running it
        origin = Path(spec.origin) if spec and spec.origin else None
        if origin is None:
            raise ImportError("gguf")
        cspec = importlib.util.spec_from_file_location(
            "app._gguf_constants", origin.with_name("constants.py")
        )
        if cspec is None or cspec.loader is None:
            raise ImportError("gguf.constants")
        module = importlib.util.module_from_spec(cspec)
        cspec.loader.exec_module(module)
        return module
    except (ImportError, OSError, SyntaxError):  # an unusual install: the ordinary import
        from gguf import constants

        return constants


gguf_constants = _gguf_constants()
GGUF_MAGIC: int = gguf_constants.GGUF_MAGIC
GGMLQuantizationType = gguf_constants.GGMLQuantizationType
GGUFValueType = gguf_constants.GGUFValueType
LlamaFileType = gguf_constants.LlamaFileType

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_MAX_KEY = 1 << 16
_MAX_STRING = 64 << 20
_MAX_COUNT = 1 << 40
SMALL_ARRAY = 64  # arrays up to this length are kept; longer ones only counted


@functools.cache
def _struct(fmt: str) -> struct.Struct:
    return struct.Struct(fmt)


class GgufReadError(ValueError):
    """The file is not a readable GGUF; the message names the file and the problem."""


class GgufTruncatedError(GgufReadError):
    """The header goes on past the bytes given: the file is cut short, or (for
    ``parse_header``) more of its beginning is needed."""


@dataclass(frozen=True)
class TensorShape:
    name: str
    dims: tuple[int, ...]
    ggml_type: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


@dataclass
class GgufHeader:
    version: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensors: list[TensorShape] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)


class _Cursor:
    """Reads from the file mapped into memory: only the pages touched are read from disk."""

    def __init__(self, buf: mmap.mmap | bytes, path: Path | str) -> None:
        self.buf = buf
        self.path = path
        self.size = len(buf)
        self.pos = 0
        self.order = "<"

    def truncated(self) -> GgufReadError:
        return GgufTruncatedError(f"{self.path} is truncated: the GGUF header ends early.")

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if end > self.size:
            raise self.truncated()
        data = self.buf[self.pos : end]
        self.pos = end
        return data

    def unpack(self, fmt: str) -> Any:
        s = _struct(self.order + fmt)
        if self.pos + s.size > self.size:
            raise self.truncated()
        value = s.unpack_from(self.buf, self.pos)[0]
        self.pos += s.size
        return value

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos > self.size:
            raise self.truncated()

    def count(self, what: str, limit: int) -> int:
        n = self.unpack("Q")
        if n > limit:
            raise GgufReadError(f"{self.path} has an implausible {what} ({n}); is it corrupt?")
        return n

    def string(self, limit: int = _MAX_STRING) -> str:
        n = self.count("string length", limit)
        return self.read(n).decode("utf-8", errors="replace")

    def value_type(self) -> GGUFValueType:
        raw = self.unpack("I")
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise GgufReadError(f"{self.path} has an unknown value type {raw}.") from None

    def scalar(self, vtype: GGUFValueType) -> Any:
        if vtype is GGUFValueType.STRING:
            return self.string()
        return self.unpack(_SCALARS[vtype])

    def skip_strings(self, n: int) -> None:
        """Skip ``n`` strings: only their length prefixes are read. This loop is the reader's
        hot path (a vocabulary is 150 000 strings and as many merges), hence its shape."""
        unpack_from = _struct(self.order + "Q").unpack_from
        buf, pos = self.buf, self.pos
        try:
            for _ in range(n):
                pos += 8 + unpack_from(buf, pos)[0]
        except struct.error:
            raise self.truncated() from None
        self.pos = pos
        if pos > self.size:
            raise self.truncated()

    def skip_items(self, vtype: GGUFValueType, n: int) -> None:
        if vtype is GGUFValueType.STRING:
            self.skip_strings(n)
        elif vtype is GGUFValueType.ARRAY:
            for _ in range(n):
                inner = self.value_type()
                self.skip_items(inner, self.count("array length", _MAX_COUNT))
        else:
            self.skip(_struct("<" + _SCALARS[vtype]).size * n)


def read_header(path: Path | str, keep: Collection[str] = ()) -> GgufHeader:
    """The metadata and tensor shapes of ``path``; raises ``GgufReadError`` or ``OSError``.
    Arrays longer than ``SMALL_ARRAY`` are only counted, except those named in ``keep``
    (``tokenizer.ggml.tokens`` for the draft model check)."""
    path = Path(path)
    with path.open("rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise GgufTruncatedError(f"{path} is truncated: the GGUF header ends early.") from None
    with buf:
        return _parse(_Cursor(buf, path), path, keep)


def parse_header(data: bytes, name: str) -> GgufHeader:
    """The header at the start of ``data``, the first bytes of a GGUF named ``name`` (a
    ranged read of a remote file); ``GgufTruncatedError`` when more bytes are needed."""
    return _parse(_Cursor(data, name), name)


def _parse(c: _Cursor, path: Path | str, keep: Collection[str] = ()) -> GgufHeader:
    magic = struct.unpack("<I", c.read(4))[0]
    if magic != GGUF_MAGIC:
        raise GgufReadError(f"{path} is not a GGUF file (wrong magic number).")
    version = c.unpack("I")
    if version & 0xFFFF == 0:  # written on a machine of the other byte order
        c.order = ">"
        version = struct.unpack(">I", struct.pack("<I", version))[0]
    if version not in (2, 3):
        raise GgufReadError(f"{path} is GGUF version {version}; only 2 and 3 are read.")
    n_tensors = c.count("tensor count", 1 << 24)
    n_kv = c.count("metadata count", 1 << 20)
    header = GgufHeader(version=version, metadata={})
    for _ in range(n_kv):
        key = c.string(_MAX_KEY)
        vtype = c.value_type()
        if vtype is GGUFValueType.ARRAY:
            item = c.value_type()
            n = c.count("array length", _MAX_COUNT)
            header.array_lengths[key] = n
            if (n <= SMALL_ARRAY or key in keep) and item is not GGUFValueType.ARRAY:
                header.metadata[key] = [c.scalar(item) for _ in range(n)]
            else:
                c.skip_items(item, n)
        else:
            header.metadata[key] = c.scalar(vtype)
    for _ in range(n_tensors):
        name = c.string(_MAX_KEY)
        n_dims = c.unpack("I")
        if n_dims > 8:
            raise GgufReadError(f"{path}: tensor {name!r} has {n_dims} dimensions.")
        dims = tuple(c.unpack("Q") for _ in range(n_dims))
        ggml_type = c.unpack("I")
        c.skip(8)  # the data offset
        header.tensors.append(TensorShape(name, dims, ggml_type))
    return header
