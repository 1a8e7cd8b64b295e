"""Running independent compiled steps (which release the GIL) on the process's threads."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_all(work: list[Callable[[], T]], threads: int) -> list[T]:
    """Each call's result, in order; in a pool of ``threads`` when there is more than one."""
    if threads <= 1 or len(work) <= 1:
        return [w() for w in work]
    with ThreadPoolExecutor(min(threads, len(work))) as pool:
        futures = [pool.submit(w) for w in work]
        return [f.result() for f in futures]



