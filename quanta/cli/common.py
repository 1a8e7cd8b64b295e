"""What every command shares: running a medium's file command, and printing (tables, strict JSON)."""

from __future__ import annotations

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
    ``quantize_file`` into a temporary path, the atomic move, and the printed report."""
    from quanta.media import get

    m = get(medium)
    with progress_bar(label or f"{medium} {m.command}", enabled=not json_out) as progress:
        report = m.write(src, dst, force=force, seed=seed, progress=progress, **options)
    show(report, json_out, title=f"{medium} {m.command}")
    return report


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
