"""The C heap's pages: handed back between the phases of a long job, or kept for the next
phase of a short one.

A block-by-block engine allocates and frees tensors of a few MB again and again; glibc's
allocator keeps the freed pages of its heap (and raises its mmap threshold after large frees,
so later allocations land in the heap too), and resident memory creeps up by the size of the
largest block's temporaries. :func:`trim` gives the free pages back (``malloc_trim``), called
once per block: a few milliseconds.

A command that encodes one large image does the opposite: its stages allocate and free arrays
of tens of MB one after another (the file, the inflated rows, the samples, colour planes,
quantized blocks, the scans' lists), each beyond glibc's largest mmap threshold, so each is a
fresh mapping whose every page is a fault the kernel answers by clearing it — in a virtual
machine often with the host faulting it in first. :func:`keep_freed` has the heap serve and
keep them instead, so that a stage reuses the pages the stage before it freed.
"""

from __future__ import annotations

import ctypes
import functools
import sys

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
#: a trim threshold no heap reaches (the largest value ``mallopt``'s int argument takes)
NEVER = (1 << 31) - 1


@functools.cache
def _libc() -> object | None:
    """glibc (the one with ``malloc_trim``), or None: on Linux the process's own symbols
    (no search for the library file: a command's start-up pays for this)."""
    try:
        if sys.platform.startswith("linux"):
            lib = ctypes.CDLL(None)
        else:
            from ctypes.util import find_library

            name = find_library("c")
            lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def trim() -> None:
    """Return the C heap's free pages to the operating system (glibc; nothing elsewhere)."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)  # type: ignore[attr-defined]


def keep_freed() -> bool:
    """From now on, let this process's C heap keep what it frees for the next allocation: blocks
    of any size taken from the heap (not each from a fresh mapping, given back when freed), free
    memory at its top not handed back to the system, one arena for every thread (so what one
    thread frees another reuses). For a short command that allocates and frees large arrays
    stage after stage; resident memory then stays at the command's peak until it exits.
    Whether it took effect (glibc only: elsewhere nothing changes). Output is unchanged either
    way: only where pages come from."""
    lib = _libc()
    if lib is None or not hasattr(lib, "mallopt"):
        return False
    return bool(lib.mallopt(M_ARENA_MAX, 1) and lib.mallopt(M_MMAP_MAX, 0)  # type: ignore[attr-defined]
                and lib.mallopt(M_TRIM_THRESHOLD, NEVER))  # type: ignore[attr-defined]


__all__ = ["keep_freed", "trim"]
