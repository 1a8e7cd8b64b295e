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


KEEP_PROBE = """
import resource, sys
import numpy as np
from quanta import memory
if sys.argv[1] == "keep":
    assert memory.keep_freed()
a = np.empty(64 << 20, np.uint8)
a[:] = 1
del a  # 64 MB: beyond glibc's largest mmap threshold, so a mapping of its own unless kept
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.empty(64 << 20, np.uint8)
b[:] = 2
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux" or _libc() is None, reason="glibc on Linux only")
def test_a_kept_heap_serves_the_next_large_array_from_the_last_ones_pages():
    """After keep_freed, 64 MB allocated, filled and freed, then 64 MB more: the second array
    takes the first one's pages (next to no faults); otherwise it is a fresh mapping, faulted
    page by page (4 kB, or 2 MB where the kernel gives numpy huge pages)."""
    import subprocess

    def faults(mode: str) -> int:
        r = subprocess.run([sys.executable, "-c", KEEP_PROBE, mode], capture_output=True, text=True,
                           check=True, timeout=120)
        return int(r.stdout.strip())

    fresh, kept = faults("plain"), faults("keep")
    assert fresh >= 30 and kept <= fresh // 4, (fresh, kept)


def test_keep_freed_needs_glibcs_mallopt(monkeypatch):
    import quanta.memory as memory

    class Lib:  # a C library without mallopt (musl, another system)
        def malloc_trim(self, pad):
            pass

    monkeypatch.setattr(memory, "_libc", Lib)
    assert memory.keep_freed() is False
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.keep_freed() is False
