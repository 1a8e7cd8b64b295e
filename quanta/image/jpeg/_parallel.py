"""Running independent compiled steps (which release the GIL) on the process's threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the pool is imported when a large image first needs it
    from concurrent.futures import ThreadPoolExecutor

T = TypeVar("T")

#: Blocks below which an image's work is not spread over threads (starting them costs more).
PARALLEL_BLOCKS = 16384

_pool: ThreadPoolExecutor | None = None
_pool_threads = 0
_lock = threading.Lock()
_here = threading.local()  # .worker: this thread is one of the pool's


def threads_for(blocks: int) -> int:
    """Threads for the work on ``blocks`` 8×8 blocks: the process's (:func:`quanta.threads.threads`)
    from :data:`PARALLEL_BLOCKS` on, else one."""
    from quanta.threads import threads

    return threads() if blocks >= PARALLEL_BLOCKS else 1


def run_all(work: list[Callable[[], T]], threads: int) -> list[T]:
    """Each call's result, in order; on a pool of ``threads`` when there is more than one.

    The pool lives as long as the process (a large image runs a dozen such steps, and
    starting threads for each cost about 10 ms of a 9-megapixel image's 240). A step the pool's own
    threads ask for runs in that thread, one call after another: a worker never waits for
    the pool it is part of."""
    if threads <= 1 or len(work) <= 1 or getattr(_here, "worker", False):
        return [w() for w in work]
    pool = _shared_pool(threads)
    futures = [pool.submit(w) for w in work]
    return [f.result() for f in futures]


def _shared_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_threads
    with _lock:
        if _pool is None or _pool_threads != threads:
            from concurrent.futures import ThreadPoolExecutor

            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="quanta-jpeg", initializer=_mark)
            _pool_threads = threads
        return _pool


def _mark() -> None:
    _here.worker = True


def _forget_pool() -> None:
    """In a forked child the parent's pool threads do not exist: start a new pool if needed."""
    global _pool, _pool_threads, _lock
    _pool, _pool_threads, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget_pool)
