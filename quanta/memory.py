"""Resident memory handed back between the phases of a long job.

A block-by-block engine allocates and frees tensors of a few MB again and again; glibc's
allocator keeps the freed pages of its heap (and raises its mmap threshold after large frees,
so later allocations land in the heap too), and resident memory creeps up by the size of the
largest block's temporaries. :func:`trim` gives the free pages back (``malloc_trim``), called
once per block: a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> object | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def trim() -> None:
    """Return the C heap's free pages to the operating system (glibc; nothing elsewhere)."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)  # type: ignore[attr-defined]


__all__ = ["trim"]
