"""Many files per command: expand inputs into jobs, run them in worker processes (or on a Dask
cluster), and account for every file.

* :func:`plan` turns files, folders (``recursive``: their subfolders too) and glob patterns into
  :class:`Job` s, keeping each file's path relative to the folder (or the pattern's fixed
  root) it was found under, with the output extension chosen by the caller.
* :func:`run` works through the jobs with a pool of ``workers`` processes (one thread each when
  they fill the cores); :func:`run_on_cluster` sends the same jobs to a Dask scheduler. Every
  file goes through :meth:`quanta.media.Medium.write`, so each output is written atomically:
  an output that exists is complete, and a re-run skips it unless ``force``.
* A bad file becomes a failed :class:`Outcome` with its one-line reason; the rest go on.
"""

from __future__ import annotations

import glob
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quanta.cores import ENV, cpus
from quanta.errors import ConfigError, InputError, QuantaError
from quanta.outputs import TMP_TAG

_MAGIC = set("*?[")


@dataclass(frozen=True)
class Job:
    """One file to process: ``src`` into ``dst``."""

    src: Path
    dst: Path


@dataclass
class Outcome:
    """What became of one job. status: ``done``, ``skipped`` (a complete output was there) or
    ``failed`` (``error`` says why, in one line). Sizes in bytes, time in seconds."""

    src: str
    dst: str
    status: str
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_pattern(text: str) -> bool:
    return any(c in _MAGIC for c in text)


def _pattern_root(pattern: str) -> Path:
    """The longest leading part of a glob pattern without wildcards (its folders only)."""
    from itertools import takewhile

    fixed = list(takewhile(lambda part: not _is_pattern(part), Path(pattern).parts[:-1]))
    return Path(*fixed) if fixed else Path(".")


def _under(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def expand(inputs: Sequence[Path | str], *, recursive: bool, reads: tuple[str, ...],
           exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """Each input file with its path relative to where it was found.

    A file is taken as named; a folder gives its files whose extension is in ``reads`` (its
    subfolders' too when ``recursive``); a pattern (``*``, ``?``, ``[...]``; ``**`` spans
    folders) gives the matching files. Files under ``exclude`` (the output folder) are left out.
    """
    found: list[tuple[Path, Path]] = []
    for item in map(str, inputs):
        p = Path(item)
        if p.is_dir():
            walk = p.rglob("*") if recursive else p.glob("*")
            found += [(f, f.relative_to(p)) for f in sorted(walk)
                      if f.is_file() and f.suffix.lower() in reads and not _under(f, exclude)]
        elif p.is_file():
            found.append((p, Path(p.name)))
        elif _is_pattern(item):
            root = _pattern_root(item)
            hits = sorted(Path(h) for h in glob.glob(item, recursive=True))
            found += [(h, h.relative_to(root) if root != Path(".") else h) for h in hits
                      if h.is_file() and not _under(h, exclude)]
            if not hits:
                raise InputError(f"{item}: no file matches")
        else:
            raise InputError(f"{item}: no such file or folder")
    return found


def plan(inputs: Sequence[Path | str], out_dir: Path | str, *, suffix_for: Callable[[Path], str],
         recursive: bool = False, reads: tuple[str, ...] = ()) -> list[Job]:
    """The jobs for ``inputs`` written under ``out_dir`` (relative paths kept, the extension
    from ``suffix_for(src)``). Two inputs bound for one output are refused before any work."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: -o names a file; a batch writes into a folder")
    jobs, seen = [], {}
    for src, rel in expand(inputs, recursive=recursive, reads=reads, exclude=out):
        dst = out / rel.with_suffix(suffix_for(src))
        key = os.path.normpath(dst)
        if key in seen:
            raise ConfigError(f"{seen[key]} and {src} would both be written to {dst}")
        seen[key] = src
        jobs.append(Job(src, dst))
    if not jobs:
        raise InputError("no input files found" + ("" if recursive else " (folders: add --recursive "
                                                                           "to include subfolders)"))
    return jobs


# ----------------------------------------------------------------------------- the work itself

_busy = False  # a worker is inside a job: a stop signal interrupts it (its output is removed)


def _stop(signum: int, _frame: Any) -> None:
    if _busy:
        raise KeyboardInterrupt()


def _init_worker(threads: int) -> None:
    """In each worker process: threads per process, and stop signals that interrupt only a
    running job (an idle worker waits for the pool's own shutdown)."""
    os.environ[ENV] = str(threads)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def work(medium: str, src: str, dst: str, force: bool, seed: int,
         options: dict[str, Any]) -> Outcome:
    """Process one file (in whichever process runs it); errors become a failed outcome."""
    global _busy
    from quanta.media import get

    t0 = time.perf_counter()
    size_in = _size(Path(src))
    if not force and Path(dst).exists():
        # Planned jobs never start on an existing output, so this is a retry (a cluster re-runs
        # a lost worker's files) or a race with another run: the output is complete either way.
        return Outcome(src, dst, "done", size_in, _size(Path(dst)), time.perf_counter() - t0)
    _busy = True
    try:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        get(medium).write(src, dst, force=force, seed=seed, **options)
    except QuantaError as e:
        msg = str(e) if str(e).startswith(src) else f"{src}: {e}"
        return Outcome(src, dst, "failed", size_in, 0, time.perf_counter() - t0, msg)
    except (OSError, ValueError, RuntimeError) as e:  # a file the readers choke on
        return Outcome(src, dst, "failed", size_in, 0, time.perf_counter() - t0,
                       f"{src}: {type(e).__name__}: {e}".splitlines()[0])
    finally:
        _busy = False
    return Outcome(src, dst, "done", size_in, _size(Path(dst)), time.perf_counter() - t0)


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


def _skipped(job: Job) -> Outcome:
    return Outcome(str(job.src), str(job.dst), "skipped", _size(job.src), _size(job.dst))


def _pending(jobs: list[Job], force: bool) -> tuple[list[Job], list[Outcome]]:
    """Jobs still to do, and the skipped ones (a present output is complete: writes are atomic)."""
    todo, skipped = [], []
    for j in jobs:
        if j.dst.exists() and not force:
            skipped.append(_skipped(j))
        else:
            todo.append(j)
    return todo, skipped


def run(jobs: list[Job], medium: str, *, workers: int | None = None, force: bool = False,
        seed: int = 0, options: dict[str, Any] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Process ``jobs`` in ``workers`` processes (default: one per core); outcomes in job order.

    ``on_outcome`` is called as each file finishes (skipped ones first). On Ctrl-C or SIGTERM
    the queued jobs are dropped, the running ones interrupted (their temporary files removed),
    and the interrupt re-raised.
    """
    opts = dict(options or {})
    report = on_outcome or (lambda o: None)
    todo, outcomes = _pending(jobs, force)
    for o in outcomes:
        report(o)
    n = max(1, min(workers or cpus(), len(todo) or 1))
    if n == 1:
        for j in todo:
            o = work(medium, str(j.src), str(j.dst), force, seed, opts)
            outcomes.append(o)
            report(o)
        return _in_order(jobs, outcomes)
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                               initargs=(max(1, cpus() // n),))
    try:
        running: set[Future] = {pool.submit(work, medium, str(j.src), str(j.dst), force, seed, opts)
                                for j in todo}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                outcomes.append(f.result())
                report(outcomes[-1])
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown()
    return _in_order(jobs, outcomes)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Drop queued jobs, interrupt running ones, and wait for the workers to clean up."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: the running job's temporary output is removed
    for p in procs:
        p.join(timeout=10)


def _in_order(jobs: list[Job], outcomes: list[Outcome]) -> list[Outcome]:
    rank = {str(j.src): i for i, j in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: rank.get(o.src, len(rank)))


def run_on_cluster(jobs: list[Job], medium: str, address: str, *, workers: int | None = None,
                   force: bool = False, seed: int = 0, options: dict[str, Any] | None = None,
                   on_outcome: Callable[[Outcome], None] | None = None,
                   on_client: Callable[[Any], None] | None = None) -> list[Outcome]:
    """:func:`run` on a Dask distributed scheduler at ``address`` (``"local"``: a
    ``LocalCluster`` of ``workers`` single-threaded processes on this machine). Inputs and
    outputs must lie on a filesystem every worker sees. A worker lost mid-file has its files
    run again elsewhere (the scheduler's retries); its temporary files are removed at the end.
    ``on_client(client)`` is called once connected (tests use it to reach the workers).
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as e:
        raise ConfigError("--cluster needs Dask: pip install 'quanta[cluster]'") from e
    opts = dict(options or {})
    report = on_outcome or (lambda o: None)
    todo, outcomes = _pending(jobs, force)
    for o in outcomes:
        report(o)
    cluster = None
    if address == "local":
        n = max(1, workers or cpus())
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, env={ENV: "1"})
        client = Client(cluster)
    else:
        client = Client(address, timeout="20s")
    try:
        if on_client is not None:
            on_client(client)
        futures = [client.submit(work, medium, str(j.src), str(j.dst), force, seed, opts,
                                 pure=False, retries=2) for j in todo]
        for f in as_completed(futures):
            outcomes.append(f.result())
            report(outcomes[-1])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    _remove_stale_temporaries(todo)
    return _in_order(jobs, outcomes)


def _remove_stale_temporaries(jobs: list[Job]) -> None:
    """Temporary files of this batch's outputs that a killed worker could not remove."""
    for j in jobs:
        for p in j.dst.parent.glob(f".{glob.escape(j.dst.name)}{TMP_TAG}*"):
            if p.is_file():
                p.unlink(missing_ok=True)


def totals(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    """Files done/skipped/failed, bytes in and out, wall time (s) and input MB/s."""
    done = [o for o in outcomes if o.status == "done"]
    size_in = sum(o.bytes_in for o in done)
    return {"files": len(outcomes), "done": len(done),
            "skipped": sum(o.status == "skipped" for o in outcomes),
            "failed": sum(o.status == "failed" for o in outcomes),
            "bytes_in": size_in, "bytes_out": sum(o.bytes_out for o in done),
            "seconds": seconds, "mb_per_s": size_in / 1e6 / seconds if seconds > 0 else None}
