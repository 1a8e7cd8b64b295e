"""Running independent compiled steps (which release the GIL) on the process's threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Blocks below which an image's work is not spread over threads (starting them costs more).
PARALLEL_BLOCKS = 16384


def threads_for(blocks: int) -> int:
    """Threads for the work on ``blocks`` 8×8 blocks: the process's (:func:`quanta.threads.threads`)
    from :data:`PARALLEL_BLOCKS` on, else one."""
    from quanta.threads import threads

    return threads() if blocks >= PARALLEL_BLOCKS else 1


def run_all(work: list[Callable[[], T]], threads: int) -> list[T]:
    """Each call's result, in order; in a pool of ``threads`` when there is more than one."""
    if threads <= 1 or len(work) <= 1:
        return [w() for w in work]
    from concurrent.futures import ThreadPoolExecutor  # only when a pool is needed

    with ThreadPoolExecutor(min(threads, len(work))) as pool:
        futures = [pool.submit(w) for w in work]
        return [f.result() for f in futures]
