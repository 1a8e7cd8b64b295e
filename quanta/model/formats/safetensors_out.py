"""Write a safetensors file tensor by tensor, some of them parked on disk
(:mod:`quanta.model.formats.spill`), none of them copied whole.

``safetensors.torch.save_file`` wants every tensor in memory and makes a bytes copy of each
before it writes; a streamed run's finished blocks are parked in a spill file instead. The
header is computed from the names, dtypes and shapes alone, then each tensor's bytes follow in
the library's order (largest dtype first, then by name) with the library's header layout (compact
JSON, the metadata first, padded with spaces to 8 bytes): the same bytes as ``save_file`` writes
(tested against it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanta.model.formats.spill import Parked, Spill, raw_bytes

#: safetensors' dtype names by numpy dtype string (bfloat16: "bf16"), in the library's enum
#: order: tensors are laid out by it, the last first
DTYPES = {"|b1": "BOOL", "|u1": "U8", "|i1": "I8", "<i2": "I16", "<u2": "U16", "<f2": "F16", "bf16": "BF16",
          "<i4": "I32", "<u4": "U32", "<f4": "F32", "<f8": "F64", "<i8": "I64", "<u8": "U64"}
_RANK = {name: i for i, name in enumerate(DTYPES.values())}


@dataclass(frozen=True)
class Deferred:
    """A tensor made only as it is written: ``chunks()`` gives its bytes in order (a streamed
    model's float head, read from the source and converted slice by slice)."""

    dtype: str  # a numpy dtype string, bfloat16 as "bf16"
    shape: tuple[int, ...]
    nbytes: int
    chunks: Callable[[], Iterable[Any]]


def _info(v: Any) -> tuple[str, tuple[int, ...], int]:
    """(safetensors dtype, shape, bytes) of a tensor, array, :class:`Parked` or :class:`Deferred`."""
    if isinstance(v, Parked | Deferred):
        return DTYPES[v.dtype], v.shape, v.nbytes
    data, dtype, shape = raw_bytes(v)
    return DTYPES[dtype], shape, len(data)


def header(entries: dict[str, Any], metadata: dict[str, str] | None = None) -> tuple[bytes, list[str]]:
    """The file's first bytes (length and padded JSON header) and the names in data order."""
    infos = {k: _info(v) for k, v in entries.items()}
    order = sorted(infos, key=lambda k: (-_RANK[infos[k][0]], k))
    head: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    at = 0
    for k in order:
        dtype, shape, n = infos[k]
        head[k] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + n]}
        at += n
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, order


def write(path: Path | str, entries: dict[str, Any], *, metadata: dict[str, str] | None = None,
          spill: Spill | None = None) -> dict[str, bytes]:
    """Write ``entries`` (name → torch tensor, numpy array, :class:`Parked` in ``spill``, or
    :class:`Deferred`) to the safetensors file ``path``; returns each tensor's sha256 (of its
    bytes as stored)."""
    head, order = header(entries, metadata)
    hashes: dict[str, bytes] = {}
    with open(path, "wb") as f:
        f.write(head)
        for k in order:
            v = entries[k]
            if isinstance(v, Parked):
                if spill is None:
                    raise ValueError(f"{k}: a parked tensor needs its spill file")
                spill.copy(v, f)
                hashes[k] = v.sha256
            elif isinstance(v, Deferred):
                h, n = hashlib.sha256(), 0
                for piece in v.chunks():
                    f.write(piece)
                    h.update(piece)
                    n += memoryview(piece).nbytes
                if n != v.nbytes:
                    raise ValueError(f"{k}: {n} bytes made where {v.nbytes} were announced")
                hashes[k] = h.digest()
            else:
                data = raw_bytes(v)[0]
                f.write(data)
                hashes[k] = hashlib.sha256(data).digest()
    return hashes


__all__ = ["DTYPES", "Deferred", "header", "write"]
