"""Printing for people: rich tables on stdout, progress bars on stderr. Used by the CLI and by
``bench/`` (which imports this, not the CLI)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from quanta.progress import Progress
from quanta.reports import Report, fmt

console = Console()
err_console = Console(stderr=True)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                left: tuple[int, ...] = (0,)) -> None:
    """Print a rich table; columns whose index is in ``left`` are left-aligned, others right."""
    t = Table(title=title)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i in left else "right")
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    console.print(t)


def print_report(report: Report, title: str | None = None) -> None:
    """A report as a two-column table."""
    print_table(title or report.title, ["", ""], [list(r) for r in report.rows()], left=(0, 1))


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar on stderr (only on a terminal); yields a ``progress(done, total)``
    callback."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
             TimeRemainingColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def batch_bar(description: str, files: int, total_bytes: int, *, enabled: bool = True) -> Iterator[Any]:
    """One progress bar over a batch's files and bytes (stderr, only on a terminal); yields
    ``advance(outcome)`` for each finished file (an object with ``bytes_in`` and ``status``)."""
    if not enabled or not err_console.is_terminal:
        yield lambda outcome: None
        return
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
             TextColumn("{task.fields[files]} files, {task.fields[failed]} failed"),
             TimeRemainingColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=max(total_bytes, 1), files=f"0/{files}", failed=0)
        state = {"done": 0, "failed": 0}

        def advance(outcome: Any) -> None:
            state["done"] += 1
            state["failed"] += outcome.status == "failed"
            bar.update(task, advance=outcome.bytes_in, files=f"{state['done']}/{files}",
                       failed=state["failed"])

        yield advance


@contextmanager
def phase_bars(names: Sequence[str], *, enabled: bool = True) -> Iterator[Any]:
    """One progress bar per named phase (stderr, only on a terminal); yields ``bar(name)``, the
    ``progress(done, total)`` callback of that phase."""
    if not enabled or not err_console.is_terminal:
        yield lambda name: None
        return
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn("{task.description:<8}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
             TimeElapsedColumn(), console=err_console) as bar:
        tasks = {n: bar.add_task(n, total=None) for n in names}
        yield lambda name: (lambda done, total: bar.update(tasks[name], completed=done, total=total))
