"""quanta.memory.trim: the heap's free pages go back to the system."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from quanta.memory import _libc, trim


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


@pytest.mark.skipif(sys.platform != "linux" or _libc() is None, reason="glibc's malloc_trim only")
def test_trim_returns_freed_heap_pages():
    big = np.ones(24 * 2**20 // 8)  # freed: glibc raises its mmap threshold past 1 MB blocks
    del big
    blocks = [np.ones(2**20 // 8) for _ in range(200)]  # 200 MB in the heap
    pin = np.ones(2**20 // 8)  # above them: the heap cannot simply shrink from the top
    del blocks
    before = _rss_mb()
    trim()
    after = _rss_mb()
    assert before - after > 100, (before, after)
    del pin


def test_trim_calls_malloc_trim_only_where_there_is_one(monkeypatch):
    """trim asks the C library for malloc_trim(0) when it has one, and is a no-op otherwise
    (another C library, another system)."""
    import quanta.memory as memory

    calls = []

    class Lib:
        def malloc_trim(self, pad):
            calls.append(pad)

    monkeypatch.setattr(memory, "_libc", Lib)
    memory.trim()
    monkeypatch.setattr(memory, "_libc", lambda: None)
    memory.trim()
    assert calls == [0]
