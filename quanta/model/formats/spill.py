"""Finished tensors parked on disk until the output file is written.

A streamed run (:mod:`quanta.model.sources.stream`) reads one block at a time; what it has
finished — each block's packed codes and scales — would still pile up in memory until the
output is written (4.5 GB for an 8 B model at 4 bits). :class:`Spill` is an anonymous temporary
file beside the output: :meth:`Spill.put` appends a tensor's bytes and returns a
:class:`Parked` record (where, how long, dtype, shape, its sha256), and the writers
(:mod:`quanta.model.formats.safetensors_out`, :func:`quanta.model.formats.gguf_rewrite.write_gguf`)
copy the bytes into the output in bounded chunks. The file has no name (it is unlinked as it is
made), so an interrupted or killed run leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

#: bytes copied at a time from the spill file into an output
CHUNK = 64 << 20


@dataclass(frozen=True)
class Parked:
    """A tensor in a :class:`Spill`: ``nbytes`` bytes at ``offset``, of ``dtype`` (a numpy
    dtype string, ``"<f2"``; bfloat16 as ``"bf16"``) and ``shape``, whose bytes hash to ``sha256``."""

    offset: int
    nbytes: int
    dtype: str
    shape: tuple[int, ...]
    sha256: bytes


def raw_bytes(t: Any) -> tuple[memoryview, str, tuple[int, ...]]:
    """A torch tensor's or numpy array's bytes (contiguous, little-endian), dtype and shape."""
    if isinstance(t, np.ndarray):
        a = np.ascontiguousarray(t)
        return memoryview(a.reshape(-1).view(np.uint8)), a.dtype.str, tuple(a.shape)
    import torch

    t = t.detach().contiguous()
    name = "bf16" if t.dtype == torch.bfloat16 else np.dtype(str(t.dtype).removeprefix("torch.")).str
    return memoryview(t.reshape(-1).view(torch.uint8).numpy()), name, tuple(t.shape)


class Spill:
    """An append-only anonymous temporary file in ``folder`` (default: the system's)."""

    def __init__(self, folder: Path | str | None = None) -> None:
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".quanta-spill-")
        self._fd = self._file.fileno()
        #: bytes written so far
        self.size = 0

    def put(self, tensor: Any) -> Parked:
        """Append ``tensor`` (torch or numpy) and return where it is."""
        data, dtype, shape = raw_bytes(tensor)
        at = self.size
        done = 0
        while done < len(data):
            done += os.pwrite(self._fd, data[done:done + CHUNK], at + done)
        self.size += len(data)
        return Parked(at, len(data), dtype, shape, hashlib.sha256(data).digest())

    def chunks(self, p: Parked) -> Iterator[bytes]:
        """The bytes of ``p`` in pieces of at most :data:`CHUNK`."""
        for a in range(0, p.nbytes, CHUNK):
            yield os.pread(self._fd, min(CHUNK, p.nbytes - a), p.offset + a)

    def read(self, p: Parked) -> np.ndarray:
        """``p``'s bytes as a numpy array of its dtype and shape (bfloat16 as raw uint16)."""
        buf = bytearray(p.nbytes)
        view = memoryview(buf)
        at = 0
        for piece in self.chunks(p):
            view[at:at + len(piece)] = piece
            at += len(piece)
        dtype = "<u2" if p.dtype == "bf16" else p.dtype
        return np.frombuffer(buf, dtype=dtype).reshape(p.shape)

    def copy(self, p: Parked, out: BinaryIO) -> None:
        """Write ``p``'s bytes to the file ``out`` at its position."""
        for piece in self.chunks(p):
            out.write(piece)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CHUNK", "Parked", "Spill", "raw_bytes"]
