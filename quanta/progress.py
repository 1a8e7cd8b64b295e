"""The one progress signature: ``progress(done, total)``, in the work's own units (frames,
blocks, layers, files); the last call has ``done == total``.

Combinators that make one such callback out of many kinds of work: :class:`Phases` (successive
phases, each with its own ``(done, total)``, shown as one bar) and :func:`counter` (a ``tick()``
per finished step of a known count). Drawing them is :mod:`quanta.render.tables`' job: one bar
(``progress_bar``), one per named phase (``phase_bars``), a batch's files and bytes
(``batch_bar``)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """A progress callback that ignores its calls."""


class Phases:
    """One progress bar over successive phases: each phase's ``(done, total)`` is shown as a
    share of the whole (phases counted as they start)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0

    def next(self) -> Progress | None:
        """The callback of the next phase (None when nothing is shown)."""
        if self.progress is None:
            return None
        base = self.done
        self.done += 1
        progress = self.progress

        def report(done: int, total: int) -> None:
            progress(int(1000 * (base + done / max(total, 1))), 1000 * self.done)

        return report


def counter(progress: Progress | None, total: int) -> Callable[[], None]:
    """A ``tick()`` that reports one more of ``total`` steps done to ``progress`` (thread-safe)."""
    import threading

    lock, done = threading.Lock(), [0]

    def tick() -> None:
        with lock:
            done[0] += 1
            if progress:
                progress(done[0], total)

    return tick
