"""The one progress signature: ``progress(done, total)``, in the work's own units (frames,
blocks, layers, files); the last call has ``done == total``."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """A progress callback that ignores its calls."""
