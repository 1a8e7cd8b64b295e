"""What every command shares: running a medium's file command, and printing (tables, strict JSON)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanta.report.tables import console, err_console, print_report, print_table, progress_bar
from quanta.reports import Report, dumps

__all__ = ["BatchOptions", "console", "err_console", "print_json", "print_report", "print_table",
           "progress_bar", "run_file_command", "run_files", "show"]


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


def _option(*names: str, default: Any = None, help: str) -> Any:
    import typer

    return typer.Option(default, *names, help=help)


#: The batch options every file command shares (typer reads them from the signature).
OUTPUT = _option("--output", "-o", help="Folder to write into: then every positional is an input "
                 "(files, folders, patterns); relative paths are kept.")
RECURSIVE = _option("--recursive", "-R", default=False, help="Include input folders' subfolders.")
JOBS = _option("--jobs", "-j", help="Worker processes for a batch (default: one per core).")
CLUSTER = _option("--cluster", help="Run the batch on a Dask scheduler at this address, or "
                  "'local' for a local cluster (needs the extra quanta\\[cluster]).")


@dataclass(frozen=True)
class BatchOptions:
    """How a file command takes many inputs: ``output`` (-o, the folder to write into; None:
    the two positionals are SRC DST), ``recursive``, ``jobs`` (worker processes; None: one per
    core) and ``cluster`` (a Dask scheduler address or ``"local"``)."""

    output: Path | None = None
    recursive: bool = False
    jobs: int | None = None
    cluster: str | None = None


def run_files(medium: str, inputs: list[Path], batch: BatchOptions, *, force: bool, json_out: bool,
              seed: int = 0, label: str | None = None,
              suffix_for: Callable[[Path], str] | None = None, **options: Any) -> None:
    """A file command with one input (``SRC DST``) or many (``INPUTS... -o OUTDIR``).

    Many: files, folders and patterns become jobs (:func:`quanta.batch.plan`) run in worker
    processes or on a Dask cluster, under one progress bar over files and bytes; a summary table
    (or ``--json``) at the end. A file that fails is reported with its reason and the rest go on;
    the exit status is then 2. Outputs already present are skipped unless ``--force``.
    """
    from quanta.errors import ConfigError

    if batch.output is None:
        if len(inputs) != 2:
            raise ConfigError("give SRC DST, or several inputs with -o OUTDIR")
        if batch.recursive or batch.jobs is not None or batch.cluster is not None:
            raise ConfigError("--recursive, --jobs and --cluster apply to a batch: add -o OUTDIR")
        run_file_command(medium, inputs[0], inputs[1], force=force, json_out=json_out, seed=seed,
                         label=label, **options)
        return
    _run_batch(medium, inputs, batch, force=force, json_out=json_out, seed=seed, label=label,
               suffix_for=suffix_for, options=options)


def _run_batch(medium: str, inputs: list[Path], batch: BatchOptions, *, force: bool, json_out: bool,
               seed: int, label: str | None, suffix_for: Callable[[Path], str] | None,
               options: dict[str, Any]) -> None:
    import time

    from quanta import batch as b
    from quanta.errors import ConfigError
    from quanta.media import get
    from quanta.report.tables import batch_bar

    m = get(medium)
    if batch.jobs is not None and batch.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if "-" in map(str, inputs):
        raise ConfigError("'-' (standard input) cannot be part of a batch")
    jobs = b.plan(inputs, batch.output, suffix_for=suffix_for or (lambda p: m.suffix),
                  recursive=batch.recursive, reads=m.reads)
    batch.output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    total = sum(j.src.stat().st_size for j in jobs)
    with batch_bar(label or f"{medium} {m.command}", len(jobs), total, enabled=not json_out) as advance:
        kw = dict(workers=batch.jobs, force=force, seed=seed, options=options, on_outcome=advance)
        outcomes = (b.run_on_cluster(jobs, medium, batch.cluster, **kw) if batch.cluster
                    else b.run(jobs, medium, **kw))
    summary = b.totals(outcomes, time.perf_counter() - t0)
    if json_out:
        print_json({"totals": summary, "files": [o.to_dict() for o in outcomes]})
    else:
        _print_summary(summary, outcomes, f"{medium} {m.command}: {len(jobs)} files → {batch.output}")
    if summary["failed"]:
        import typer

        raise typer.Exit(2)


def _print_summary(summary: dict[str, Any], outcomes: list[Any], title: str) -> None:
    mb = 1e6
    print_table(title, ["files", "done", "skipped", "failed", "MB in", "MB out", "seconds", "MB/s in"],
                [[summary["files"], summary["done"], summary["skipped"], summary["failed"],
                  f"{summary['bytes_in'] / mb:.1f}", f"{summary['bytes_out'] / mb:.1f}",
                  f"{summary['seconds']:.2f}", summary["mb_per_s"]]], left=())
    for o in outcomes:
        if o.status == "failed":
            err_console.print(f"[red]failed[/red] {o.error}", markup=True, highlight=False)


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
