"""What every command shares: running a medium's file command, and printing (tables, strict JSON)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from quanta.report.tables import console, err_console, print_report, print_table, progress_bar
from quanta.reports import Report, dumps

__all__ = ["console", "err_console", "print_json", "print_report", "print_table", "progress_bar",
           "run_file_command", "show"]


def print_json(obj: Any) -> None:
    """Print ``obj`` as strict JSON on stdout (non-finite numbers as ``null``)."""
    print(dumps(obj))


def show(report: Report, json_out: bool, title: str | None = None) -> None:
    """Print a report: strict JSON with ``--json``, else a table."""
    if json_out:
        print_json(report)
    else:
        print_report(report, title)


def run_file_command(medium: str, src: Path, dst: Path, *, force: bool, json_out: bool,
                     seed: int = 0, label: str | None = None, **options: Any) -> Report:
    """The one flow of every file command: output checks, a progress bar, the medium's
    ``quantize_file`` into a temporary path, the atomic move, and the printed report.

    ``-`` as SRC reads standard input; ``-`` as DST writes the result to standard output (in the
    medium's default format; the report is then not printed)."""
    import tempfile

    from quanta.media import get

    m = get(medium)
    with tempfile.TemporaryDirectory(prefix="quanta-") as tmp:
        src = _stdin(Path(tmp), m) if str(src) == "-" else src
        to_stdout = str(dst) == "-"
        if to_stdout:
            _check_stdout(m, json_out)
            dst = Path(tmp) / f"stdout{m.suffix}"
        with progress_bar(label or f"{medium} {m.command}", enabled=not json_out) as progress:
            report = m.write(src, dst, force=force, seed=seed, progress=progress, **options)
        if to_stdout:
            sys.stdout.buffer.write(Path(dst).read_bytes())
            sys.stdout.flush()
            return report
    show(report, json_out, title=f"{medium} {m.command}")
    return report


def _stdin(folder: Path, medium: Any) -> Path:
    from quanta.errors import InputError

    if medium.folder:
        raise InputError(f"{medium.name} inputs are folders; standard input cannot hold one")
    p = folder / "stdin"
    p.write_bytes(sys.stdin.buffer.read())
    if p.stat().st_size == 0:
        raise InputError("standard input is empty")
    return p


def _check_stdout(medium: Any, json_out: bool) -> None:
    from quanta.errors import OutputError

    if medium.folder or not medium.suffix:
        raise OutputError(f"{medium.name} writes folders; '-' (standard output) cannot hold one")
    if json_out:
        raise OutputError("--json and '-' would both write to standard output; choose one")


def generic_app(medium: str) -> Any:
    """A command group for a medium without its own CLI module: one ``quantize`` command that
    runs the medium contract's ``quantize_file`` with its defaults."""
    import typer

    from quanta.media import get

    m = get(medium)
    app = typer.Typer(help=m.summary, no_args_is_help=True)

    @app.command(m.command, help=f"Quantize SRC into DST ({medium}, default settings).")
    def _quantize(src: Path = typer.Argument(..., help="Input."),
                  dst: Path = typer.Argument(..., help="Output."),
                  seed: int = typer.Option(0, help="Seed: the same seed gives the same bytes."),
                  force: bool = typer.Option(False, "--force", help="Overwrite an output quanta wrote."),
                  json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        run_file_command(medium, src, dst, force=force, json_out=json_out, seed=seed)

    return app
