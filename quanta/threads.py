"""How many cores a process may use: the one place that answers it.

``QUANTA_THREADS`` (a positive integer) caps the threads one quanta process starts, as
``OMP_NUM_THREADS`` does for OpenMP; a batch sets it in each worker process so that N workers
on N cores do not each start N threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

ENV = "QUANTA_THREADS"


def cpus() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads() -> int:
    """Threads one quanta process should use: ``QUANTA_THREADS`` when set, else :func:`cpus`."""
    value = os.environ.get(ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    if value:
        _warn_once(f"quanta: {ENV}={value!r} ignored (a positive integer is needed); using {cpus()}")
    return cpus()


def each(fn: Callable[[int], None], starts: Iterable[int]) -> None:
    """``fn(start)`` for every start, on :func:`threads` threads (``fn`` runs a kernel that
    releases the GIL); on the calling thread when one is all there is to use."""
    starts = list(starts)
    workers = min(threads(), len(starts))
    if workers < 2:
        for s in starts:
            fn(s)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, starts))


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    import sys

    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)


#: numpy's OpenBLAS thread setting (read once, when numpy is first imported)
BLAS_ENV = "OPENBLAS_NUM_THREADS"


def blas_on_one_thread() -> None:
    """Have numpy's OpenBLAS run on one thread in this process (and the workers it starts),
    unless the user set ``OPENBLAS_NUM_THREADS``: for commands whose heavy loops are quanta's
    own kernels (the media registered with ``numpy_blas=False``: images, audio). At load
    OpenBLAS starts a thread per core that spins for a while — about 0.1 s of CPU taken from the
    other cores by every process (a shell loop of commands, a batch's workers). Effective only
    before numpy's first import."""
    os.environ.setdefault(BLAS_ENV, "1")

