"""What every command shares: the console, output files, and JSON/table printing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from quanta.errors import OutputError

console = Console()
err_console = Console(stderr=True)


def check_output(out: Path, *, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an output that exists without ``force`` or that is one of the inputs."""
    for inp in inputs:
        same = os.path.abspath(inp) == os.path.abspath(out)
        if same or (inp.exists() and out.exists() and os.path.samefile(inp, out)):
            raise OutputError(f"{out}: output path is the same as the input")
    if out.exists() and not force:
        raise OutputError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise OutputError(f"{out.parent}: folder does not exist")


@contextmanager
def atomic_path(out: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; rename it onto ``out`` only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}", dir=out.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def print_table(title: str, columns: list[str], rows: list[list[Any]], *,
                left: tuple[int, ...] = (0,)) -> None:
    """Print a rich table; columns whose index is in ``left`` are left-aligned, others right."""
    t = Table(title=title)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i in left else "right")
    for r in rows:
        t.add_row(*[_fmt(v) for v in r])
    console.print(t)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr; yields ``advance(n)``. Disabled: a no-op callable."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), console=err_console, transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n: prog.advance(task, n)


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (plain, no colour)."""
    print(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
