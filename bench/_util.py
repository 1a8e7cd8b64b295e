"""Shared helpers for the benchmarks: timing, tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "out"


def median_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def megapixels_per_s(images: list, fn: Callable[[Any], Any], threads: int, repeat: int = 3) -> float:
    """Megapixels per second of ``fn`` over ``images`` (arrays, height × width first) mapped by
    ``threads`` worker threads, best of ``repeat`` passes after one warm-up call."""
    from concurrent.futures import ThreadPoolExecutor

    mp = sum(i.shape[0] * i.shape[1] for i in images) / 1e6
    fn(images[0])
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeat):
            t0 = time.perf_counter()
            list(pool.map(fn, images))
            best = min(best, time.perf_counter() - t0)
    return mp / best


def machine() -> str:
    """One line describing this machine."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_json(name: str, payload: dict) -> Path:
    """Write ``payload`` (plus date and machine) to ``bench/out/NAME.json``."""
    OUT.mkdir(exist_ok=True)
    payload = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
