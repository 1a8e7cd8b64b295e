"""What every command shares: running a medium's file command, and printing (tables, strict JSON)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanta.render.tables import console, err_console, print_report, print_table, progress_bar
from quanta.reports import Report, dumps, target_text

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


def run_file_command(medium: str, src: Path, dst: Path, options: Any = None, *, force: bool,
                     json_out: bool, seed: int = 0, label: str | None = None) -> Report:
    """The one flow of every file command: output checks, a progress bar, the medium's
    ``quantize_file`` into a temporary path, the atomic move, and the printed report. ``options``:
    the medium's ``Options``, built by the command (every option that is wrong for any input
    was refused then, before any work; None: the defaults).

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
            report = m.write(src, dst, options, force=force, seed=seed, progress=progress)
        if to_stdout:
            sys.stdout.buffer.write(Path(dst).read_bytes())
            sys.stdout.flush()
            return report
    show(report, json_out, title=f"{medium} {m.command}")
    _check_target(report)
    return report


def plot_path(plot: Path | None, *, force: bool, inputs: tuple[Path, ...]) -> Path | None:
    """A ``--plot`` file's path, checked before any work: a PNG, not one of ``inputs``, an
    existing file replaced only with ``--force``."""
    from quanta.outputs import check_output, check_suffix

    if plot is None:
        return None
    check_suffix(plot, (".png",), "the plot")
    return check_output(plot, force=force, inputs=inputs)


def write_plot(plot: Path | None, draw: Callable[[Path], Any]) -> None:
    """``draw(path)`` into a temporary file moved onto ``plot`` (checked by :func:`plot_path`;
    nothing when None): a plot, like every output, is whole or absent."""
    from quanta.outputs import atomic_output

    if plot is not None:
        with atomic_output(plot) as tmp:
            draw(tmp)


#: the exit status of a command whose output was written but whose target was missed
MISSED = 3


def _check_target(report: Report) -> None:
    """A missed target is written (the closest file) but not success: one line on stderr, exit 3."""
    target = getattr(report, "target", None)
    if target and not target.get("met", True):
        import typer

        kind = target["kind"]
        err_console.print(f"quanta: target not met: {kind} {target_text(kind, target['target'])}, reached "
                          f"{target_text(kind, target['value'])} (the closest file was written)",
                          highlight=False)
        raise typer.Exit(MISSED)


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


def run_files(medium: str, inputs: list[Path], batch: BatchOptions, options: Any = None, *, force: bool,
              json_out: bool, seed: int = 0, label: str | None = None,
              suffix_for: Callable[[Path], str] | None = None) -> None:
    """A file command with one input (``SRC DST``) or many (``INPUTS... -o OUTDIR``).

    Many: files, folders and patterns become jobs (:func:`quanta.batch.plan`) run in worker
    processes or on a Dask cluster, under one progress bar over files and bytes; a summary table
    (or ``--json``) at the end, each file's notes and missed targets included. A file that fails
    is reported with its reason and the rest go on; the exit status is then 2 (3 when every file
    was written but a target was missed). Outputs quanta already wrote with the same options are
    skipped unless ``--force``.
    """
    from quanta.errors import ConfigError

    if batch.output is None:
        if len(inputs) != 2:
            raise ConfigError("give SRC DST, or several inputs with -o OUTDIR")
        if batch.recursive or batch.jobs is not None or batch.cluster is not None:
            raise ConfigError("--recursive, --jobs and --cluster apply to a batch: add -o OUTDIR")
        from quanta.media import get

        dst = inputs[1]
        if not force and dst.exists() and dst.suffix.lower() in get(medium).reads:
            raise ConfigError(f"{dst} exists; pass --force to overwrite it (two inputs? write them "
                              "into a folder with -o OUTDIR)")
        run_file_command(medium, inputs[0], inputs[1], options, force=force, json_out=json_out,
                         seed=seed, label=label)
        return
    _run_batch(medium, inputs, batch, force=force, json_out=json_out, seed=seed, label=label,
               suffix_for=suffix_for, options=options)


def _run_batch(medium: str, inputs: list[Path], batch: BatchOptions, *, force: bool, json_out: bool,
               seed: int, label: str | None, suffix_for: Callable[[Path], str] | None,
               options: Any) -> None:
    """Plan (every input checked, once), run, and account: the summary and
    ``--json`` are printed on interruption too; the exit status is 0 only when every file did
    what was asked (2: a file failed; 3: a target was missed)."""
    import time

    from quanta import batch as b
    from quanta.media import get
    from quanta.render.tables import batch_bar

    m = get(medium)
    jobs = _plan_batch(m, inputs, batch, suffix_for)
    created = _make_output_folder(batch.output)
    t0 = time.perf_counter()
    total = sum(b.size_of(j.src) for j in jobs)
    outcomes: list[Any] = []
    title = f"{medium} {m.command}: {len(jobs)} file{'s' * (len(jobs) != 1)} → {batch.output}"
    try:
        with batch_bar(label or f"{medium} {m.command}", len(jobs), total, enabled=not json_out) as advance:
            def seen(o: Any) -> None:
                outcomes.append(o)
                advance(o)

            kw = dict(workers=batch.jobs, force=force, seed=seed, options=options, on_outcome=seen)
            if batch.cluster:
                b.run_on_cluster(jobs, medium, batch.cluster, **kw)
            else:
                b.run(jobs, medium, **kw)
    except BaseException as e:
        if created and not any(batch.output.iterdir()):
            batch.output.rmdir()  # nothing was written: leave no empty folder behind
        if not isinstance(e, Exception):  # interrupted: say what was finished
            _report_batch(outcomes, jobs, t0, title + " (interrupted)", json_out)
        raise
    status = _report_batch(outcomes, jobs, t0, title, json_out)
    if status:
        import typer

        raise typer.Exit(status)


def _plan_batch(m: Any, inputs: list[Path], batch: BatchOptions,
                suffix_for: Callable[[Path], str] | None) -> list[Any]:
    """Everything a batch can refuse before any work (its options were checked as they were
    built): the cluster's address, the inputs (:func:`quanta.batch.plan`)."""
    from quanta import batch as b
    from quanta.errors import ConfigError

    if batch.jobs is not None and batch.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if "-" in map(str, inputs):
        raise ConfigError("'-' (standard input) cannot be part of a batch")
    if batch.cluster is not None:
        b.check_address(batch.cluster)
    return b.plan(inputs, batch.output, suffix_for=suffix_for or (lambda p: m.suffix),
                  recursive=batch.recursive, reads=m.reads)


def _make_output_folder(out: Path) -> bool:
    """Create OUTDIR (True if it was created) and refuse one that cannot be written."""
    import os

    from quanta.errors import OutputError

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: permission denied (the output folder is not writable)")
    return created


def _batch_status(outcomes: list[Any]) -> int:
    """2 when a file failed, 3 when one missed its target, else 0."""
    return 2 if any(o.status == "failed" for o in outcomes) else (3 if any(o.missed for o in outcomes) else 0)


def _report_batch(outcomes: list[Any], jobs: list[Any], t0: float, title: str, json_out: bool) -> int:
    """Print the summary (or JSON) of the outcomes so far; return the exit status they give."""
    import time

    from quanta import batch as b

    rank = {str(j.src): i for i, j in enumerate(jobs)}
    outcomes = sorted(outcomes, key=lambda o: rank.get(o.src, len(rank)))
    summary = b.totals(outcomes, time.perf_counter() - t0)
    if json_out:
        print_json({"totals": summary, "files": [o.to_dict() for o in outcomes]})
    else:
        _print_summary(summary, outcomes, title)
    return _batch_status(outcomes)


def _print_summary(summary: dict[str, Any], outcomes: list[Any], title: str) -> None:
    from quanta.units import format_size

    print_table(title, ["files", "done", "skipped", "failed", "target missed", "in", "out", "seconds",
                        "MB/s in"],
                [[summary["files"], summary["done"], summary["skipped"], summary["failed"],
                  summary["missed"], format_size(summary["bytes_in"]), format_size(summary["bytes_out"]),
                  f"{summary['seconds']:.2f}", summary["mb_per_s"]]], left=())
    for o in outcomes:
        if o.status == "failed":
            err_console.print(f"[red]failed[/red] {o.error}", markup=True, highlight=False)
            continue
        if o.missed:
            t = o.target
            err_console.print(f"[yellow]target missed[/yellow] {o.src}: {t['kind']} "
                              f"{target_text(t['kind'], t['target'])}, reached "
                              f"{target_text(t['kind'], t['value'])}", markup=True, highlight=False)
        for note in o.notes:
            err_console.print(f"note {o.src}: {note}", highlight=False)


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
