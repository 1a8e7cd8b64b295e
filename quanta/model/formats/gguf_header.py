"""A GGUF file's header, read fast: its metadata and tensor table, no tensor data touched.

gguf-py's ``GGUFReader`` makes a numpy view of every element of every array (1.9 s for SmolLM2's
49,152 tokens and 48,900 merges); planning a command (:mod:`quanta.model.quantize.plan`) needs the names,
shapes and types of the tensors and a few values, in well under a second. Every count is checked
against the bytes left before it is used, so a hostile header is refused, never allocated.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanta.errors import InputError

_MAGIC = b"GGUF"
#: GGUF value types: struct format of the scalars (8: string, 9: array)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
            12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8",
          11: "<i8", 12: "<f8"}


@dataclass(frozen=True)
class Field:
    """One metadata value (``contents()`` as gguf-py's fields give it)."""

    value: Any

    def contents(self) -> Any:
        return self.value


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of the file: its name, shape (numpy order: rows first), GGML type and bytes."""

    name: str
    shape: tuple[int, ...]
    ggml_type: str
    n_bytes: int
    offset: int = -1  # where its data starts in the file (bytes)


@dataclass(frozen=True)
class Header:
    """What :func:`read_header` returns: ``fields`` (key → :class:`Field`) and ``tensors``."""

    fields: dict[str, Field]
    tensors: list[TensorInfo]


class _Cursor:
    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise InputError(f"{self.path}: truncated or malformed GGUF header")

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v

    def string(self) -> str:
        n = self.unpack("<Q")
        self.need(n)
        s = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype != 9:
            raise InputError(f"{self.path}: unknown GGUF value type {vtype}")
        etype, count = self.unpack("<I"), self.unpack("<Q")
        if etype in _NUMPY:
            import numpy as np

            size = np.dtype(_NUMPY[etype]).itemsize
            self.need(count * size)
            arr = np.frombuffer(self.buf, dtype=_NUMPY[etype], count=count, offset=self.pos)
            self.pos += count * size
            return arr.tolist()
        self.need(count)  # every element takes at least a byte: a huge count cannot fit
        return [self.value(etype) for _ in range(count)]


def read_header(path: Path | str) -> Header:
    """The metadata and tensor table of the GGUF file ``path`` (version 2 or 3)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    p = Path(path)
    try:
        with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            c = _Cursor(buf, p)
            c.need(4)
            if bytes(buf[:4]) != _MAGIC:
                raise InputError(f"{p}: not a GGUF file")
            c.pos = 4
            version, n_tensors, n_kv = c.unpack("<I"), c.unpack("<Q"), c.unpack("<Q")
            if version not in (2, 3):
                raise InputError(f"{p}: GGUF version {version} is not supported (2 or 3)")
            c.need(n_kv + n_tensors)
            fields = {}
            for _ in range(n_kv):
                key = c.string()
                fields[key] = Field(c.value(c.unpack("<I")))
            tensors = []
            for _ in range(n_tensors):
                name = c.string()
                dims = [c.unpack("<Q") for _ in range(c.unpack("<I"))]
                kind = GGMLQuantizationType(c.unpack("<I")).name
                rel = c.unpack("<Q")  # the data offset, from the start of the data section
                n = 1
                for d in dims:
                    n *= d
                block, size = GGML_QUANT_SIZES[GGMLQuantizationType[kind]]
                tensors.append(TensorInfo(name, tuple(reversed(dims)), kind, n // block * size, rel))
            align = fields.get("general.alignment", Field(32)).value
            if not isinstance(align, int) or align < 1:
                raise InputError(f"{p}: general.alignment {align!r} is not a positive integer")
            start = -(-c.pos // align) * align
            size = len(buf)
            tensors = [TensorInfo(t.name, t.shape, t.ggml_type, t.n_bytes, start + t.offset) for t in tensors]
            for t in tensors:
                if t.offset + t.n_bytes > size:
                    raise InputError(f"{p}: tensor {t.name} runs past the end of the file (truncated?)")
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: cannot read the GGUF header ({e})") from None
    return Header(fields, tensors)
