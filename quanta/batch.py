"""Many files per command: expand inputs into jobs, run them in worker processes (or on a Dask
cluster), and account for every file.

* :func:`plan` turns files, folders (``recursive``: their subfolders too) and glob patterns into
  :class:`Job` s, keeping each file's path relative to the folder (or the pattern's fixed
  root) it was found under, with the output extension chosen by the caller.
* :func:`run` works through the jobs with a pool of ``workers`` processes (one thread each when
  they fill the cores); :func:`run_on_cluster` sends the same jobs to a Dask scheduler. Every
  file goes through :meth:`quanta.media.Medium.write`, so each output is written atomically.
  The output folder's record (:mod:`quanta.manifest`) proves completion: a re-run skips an
  output only if quanta wrote it from the same input with the same options, and ``force``
  replaces only outputs quanta wrote.
* A bad file becomes a failed :class:`Outcome` with its one-line reason; the rest go on. A
  worker that dies fails only its file (retried once); workers die with their parent.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quanta.errors import ConfigError, InputError, QuantaError
from quanta.outputs import temporary_prefix
from quanta.reports import jsonable
from quanta.threads import ENV, cpus
from quanta.walk import Found, find, inode_key

if TYPE_CHECKING:  # the process pool is imported when a batch starts one
    from concurrent.futures import Future, ProcessPoolExecutor


@dataclass(frozen=True)
class Job:
    """One file to process: ``src`` into ``dst``. error: the input cannot be read (a folder
    that cannot be listed, a file without read permission): the job fails without running.
    root: the batch's output folder, whose record (:mod:`quanta.manifest`) proves completion."""

    src: Path
    dst: Path
    error: str | None = None
    root: Path | None = None


@dataclass
class Outcome:
    """What became of one job. status: ``done``, ``skipped`` (a complete output was there) or
    ``failed`` (``error`` says why, in one line). Sizes in bytes, time in seconds. notes: what
    the medium said of the file (alpha dropped, 16-bit rounded, …). target: the target search's
    result where one was asked for (``met`` False: done, but the target was missed)."""

    src: str
    dst: str
    status: str
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    target: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @property
    def missed(self) -> bool:
        """Done, but the target it was given was not met."""
        return self.status == "done" and bool(self.target) and not self.target.get("met", True)


def plan(inputs: Sequence[Path | str], out_dir: Path | str, *, suffix_for: Callable[[Path], str],
         recursive: bool = False, reads: tuple[str, ...] = ()) -> list[Job]:
    """The jobs for ``inputs`` (files, folders, patterns: :func:`quanta.walk.find`) written
    under ``out_dir`` (relative paths kept, the extension from ``suffix_for(src)``). Refused
    before any work: two inputs bound for one output, an output that would replace its input,
    ``out_dir`` as an input folder. The same file named twice is taken once; a folder or file
    that cannot be read becomes a job that fails without running."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: -o names a file; a batch writes into a folder")
    out_key = inode_key(out)
    skip = {out_key} if out_key else set()
    jobs: list[Job] = []
    seen: dict[str, Path] = {}
    for item in map(str, inputs):
        if out_key is not None and Path(item).is_dir() and inode_key(item) == out_key:
            raise ConfigError(f"{item}: -o is this input folder; write into another folder "
                              "(a new one, or a subfolder of it)")
        for f in find(item, recursive=recursive, reads=reads, skip=skip):
            job = _job(f, out, suffix_for, seen)
            if job is not None:
                jobs.append(job)
    if not jobs:
        raise InputError("no input files found" + ("" if recursive else " (folders: add --recursive "
                                                                           "to include subfolders)"))
    return jobs


def _job(f: Found, out: Path, suffix_for: Callable[[Path], str], seen: dict[str, Path]) -> Job | None:
    dst = out / (f.rel if f.error else f.rel.with_suffix(suffix_for(f.path)))
    key = os.path.normpath(os.path.abspath(dst))
    if not key.startswith(os.path.normpath(os.path.abspath(out)) + os.sep):
        raise ConfigError(f"{f.path}: its output {dst} would lie outside {out}")
    if key in seen:
        if os.path.realpath(seen[key]) == os.path.realpath(f.path):
            return None  # the same file named twice (a folder and a pattern, say)
        raise ConfigError(f"{seen[key]} and {f.path} would both be written to {dst}")
    seen[key] = f.path
    if f.error is None and dst.exists() and os.path.samefile(dst, f.path):
        raise ConfigError(f"{f.path}: its output would replace it (choose another -o)")
    return Job(f.path, dst, f.error, out)


# ----------------------------------------------------------------------------- the work itself

_busy = False  # a worker is inside a job: a stop signal interrupts it (its output is removed)
_parent: int | None = None  # in a pool worker: the parent's pid (a worker never outlives it)


def _stop(signum: int, _frame: Any) -> None:
    """A pool worker's SIGINT/SIGTERM/SIGHUP: a running job is interrupted (its temporary
    output removed); an idle worker leaves on SIGTERM or SIGHUP (SIGINT is its parent's to act
    on: the parent stops the pool)."""
    if _busy:
        raise KeyboardInterrupt()
    if signum != signal.SIGINT:
        os._exit(128 + signum)


def _die_with_parent() -> None:
    """Have the kernel send SIGTERM when the parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``),
    else a watchdog thread that checks once a second; either way the worker stops as on
    SIGTERM (a running job's temporary output removed) instead of living on, orphaned."""
    import ctypes
    import threading

    try:
        ok = ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0) == 0
    except (OSError, AttributeError):
        ok = False
    if not ok:
        def watch() -> None:
            while os.getppid() == _parent:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != _parent:  # the parent died before the death signal was armed
        os._exit(143)


def _init_worker(threads: int, parent: int) -> None:
    """In each worker process: threads per process, stop signals that interrupt only a running
    job, and death with the parent."""
    global _parent
    _parent = parent
    os.environ[ENV] = str(threads)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    _die_with_parent()


def _options(medium: str, options: Any) -> Any:
    """The medium's ``Options`` (None: its defaults)."""
    from quanta.media import get

    return get(medium).options() if options is None else options


def work(medium: str, src: str, dst: str, force: bool, seed: int, options: Any) -> Outcome:
    """Process one file (in whichever process runs it); errors become a failed outcome."""
    global _busy
    from quanta.media import get

    t0 = time.perf_counter()
    size_in = size_of(Path(src))
    if not force and Path(dst).exists():
        # Planned jobs never start on an existing output, so this is a retry (a cluster re-runs
        # a lost worker's files) or a race with another run: the output is complete either way.
        return Outcome(src, dst, "done", size_in, size_of(Path(dst)), time.perf_counter() - t0)
    _busy = True
    try:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        report = get(medium).write(src, dst, options, force=force, seed=seed)
    except QuantaError as e:
        msg = str(e) if str(e).startswith(src) else f"{src}: {e}"
        return Outcome(src, dst, "failed", size_in, 0, time.perf_counter() - t0, msg)
    except (OSError, ValueError, RuntimeError) as e:  # a file the readers choke on
        return Outcome(src, dst, "failed", size_in, 0, time.perf_counter() - t0,
                       f"{src}: {_oneline(e)}")
    finally:
        _busy = False
        if _parent is not None and os.getppid() != _parent:
            os._exit(143)  # the parent is gone: nobody is waiting for this outcome
    return Outcome(src, dst, "done", size_in, size_of(Path(dst)), time.perf_counter() - t0,
                   notes=list(getattr(report, "notes", None) or []),
                   target=getattr(report, "target", None))


def _oneline(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror.lower()}" + (f" ({Path(e.filename).name})" if e.filename else "")
    return f"{type(e).__name__}: {e}".splitlines()[0]


def size_of(p: Path) -> int:
    """Bytes in a file or a folder's files (0 where it cannot be read)."""
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size if p.exists() else 0
    except OSError:
        return 0


def _failed(job: Job, error: str) -> Outcome:
    return Outcome(str(job.src), str(job.dst), "failed", size_of(job.src), 0, 0.0, error)


class _Records:
    """The output folders' records (:mod:`quanta.manifest`) of one batch."""

    def __init__(self, medium: str, options: Any, seed: int) -> None:
        from quanta.manifest import options_digest

        self.digest = options_digest(medium, options, seed)
        self.manifests: dict[Path, Any] = {}

    def of(self, job: Job) -> Any:
        from quanta.manifest import Manifest

        if job.root is None:
            return None
        if job.root not in self.manifests:
            self.manifests[job.root] = Manifest(job.root)
        return self.manifests[job.root]

    def state(self, job: Job) -> str:
        m = self.of(job)
        if m is None:  # a job made by hand, without a batch folder: a present output is complete
            return "current" if job.dst.exists() else "absent"
        return m.state(job.src, job.dst, self.digest)

    def record(self, job: Job, outcome: Outcome) -> None:
        m = self.of(job)
        if m is not None and outcome.status == "done" and job.dst.exists():
            m.record(job.src, job.dst, self.digest)

    def reporter(self, todo: list[Job], outcomes: list[Outcome],
                 on_outcome: Callable[[Outcome], None] | None) -> Callable[[Outcome], None]:
        """``report(outcome)`` for a finished job of ``todo``: recorded, kept in ``outcomes``,
        passed on to ``on_outcome``; the outcomes decided before running are passed on first."""
        by_src = {str(j.src): j for j in todo}
        tell = on_outcome or (lambda o: None)
        for o in outcomes:
            tell(o)

        def report(o: Outcome) -> None:
            if o.src in by_src:
                self.record(by_src[o.src], o)
            outcomes.append(o)
            tell(o)

        return report


def _pending(jobs: list[Job], force: bool, records: _Records) -> tuple[list[Job], list[Outcome]]:
    """Jobs still to do, and the outcomes decided without running: unreadable inputs, complete
    outputs (skipped), and outputs that may not be replaced."""
    todo, decided = [], []
    for j in jobs:
        if j.error:
            decided.append(_failed(j, j.error))
            continue
        state = records.state(j)
        if state == "absent" or (force and state in ("current", "stale")):
            todo.append(j)
        elif state == "current":
            decided.append(Outcome(str(j.src), str(j.dst), "skipped", size_of(j.src), size_of(j.dst)))
        elif state == "stale":
            decided.append(_failed(j, f"{j.dst} was made with other options, from another input or "
                                      "has changed since; pass --force to redo it"))
        else:
            decided.append(_failed(j, f"{j.dst} exists and quanta has no record of writing it; "
                                      "refusing to replace it (move it away, or choose another -o)"))
    return todo, decided


def run(jobs: list[Job], medium: str, *, workers: int | None = None, force: bool = False,
        seed: int = 0, options: Any = None,
        on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Process ``jobs`` in ``workers`` processes (default: one per core); outcomes in job order.

    ``on_outcome`` is called as each file finishes (decided ones first). A worker that dies
    (killed, out of memory) fails nothing but its own file, found by retrying the files it
    could have been running one at a time. On Ctrl-C or SIGTERM the queued jobs are dropped,
    the running ones interrupted (their temporary files removed), and the interrupt re-raised.
    """
    opts = _options(medium, options)
    records = _Records(medium, opts, seed)
    todo, outcomes = _pending(jobs, force, records)
    report = records.reporter(todo, outcomes, on_outcome)
    n = max(1, min(workers or cpus(), len(todo) or 1))
    try:
        if n == 1:
            for j in todo:
                report(work(medium, str(j.src), str(j.dst), force, seed, opts))
        else:
            _run_pool(todo, n, lambda j: (work, medium, str(j.src), str(j.dst), force, seed, opts),
                      report)
    finally:
        _remove_stale_temporaries(todo)
    return _in_order(jobs, outcomes)


def _run_pool(todo: list[Job], n: int, call: Callable[[Job], tuple],
              report: Callable[[Outcome], None]) -> None:
    """Run ``todo`` in a pool of ``n`` processes, ``2n`` files in flight at a time. When a worker
    dies (killed, out of memory), every file in flight becomes a suspect, a fresh pool takes
    over, and each suspect is retried alone: one that dies again, alone, fails; the others are
    done as usual."""
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context(start_method())
    queue: deque[Job] = deque(todo)
    suspects: deque[Job] = deque()
    while queue or suspects:
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                                   initargs=(max(1, cpus() // n), os.getpid()))
        running: dict[Future, tuple[Job, bool]] = {}
        broken = False
        try:
            while running or (not broken and (queue or suspects)):
                if not broken:
                    _submit(pool, running, queue, suspects, n, call)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    j, alone = running.pop(f)
                    try:
                        report(f.result())
                    except BrokenProcessPool:
                        broken = True
                        if alone:
                            report(_failed(j, f"{j.src}: the worker process died while writing it "
                                              "(killed, or out of memory?), and again when retried alone"))
                        else:
                            suspects.append(j)
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)


def _submit(pool: ProcessPoolExecutor, running: dict, queue: Any, suspects: Any, n: int,
            call: Callable[[Job], tuple]) -> None:
    """Fill the pool: a suspect runs alone (once the others finish), else up to ``2n`` files."""
    if suspects:
        if not running:
            j = suspects.popleft()
            fn, *args = call(j)
            running[pool.submit(fn, *args)] = (j, True)
        return
    while queue and len(running) < 2 * n:  # one queued behind each running file: no idle gap
        j = queue.popleft()
        fn, *args = call(j)
        running[pool.submit(fn, *args)] = (j, False)


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


def check_address(address: str) -> str:
    """A Dask scheduler address as ``--cluster`` takes it: ``local``, or
    ``PROTOCOL://HOST:PORT`` (tcp, tls, ucx, ws, wss) — checked before anything is written."""
    from urllib.parse import urlsplit

    if address == "local":
        return address
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls", "ucx", "ws", "wss") or not parts.hostname or port is None:
        raise ConfigError(f"--cluster {address!r}: give 'local' or a scheduler address such as "
                          "tcp://HOST:8786")
    return address


#: seconds to wait for a remote scheduler before giving up (a refused connection fails sooner)
CONNECT_TIMEOUT_S = 5


def start_method() -> str:
    """How worker processes start: forked where the platform can (they begin with this
    process's imports, the medium's modules included), else spawned."""
    import multiprocessing as mp

    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def _connect(address: str, workers: int | None, scratch: str) -> tuple[Any, Any]:
    """A Dask client (and the local cluster it owns, if any)."""
    try:
        import logging

        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise ConfigError("--cluster needs Dask: pip install 'quanta[cluster]'") from e
    logging.getLogger("distributed").setLevel(logging.ERROR)  # no timestamped chatter on stderr
    if address == "local":
        import dask

        # as the pool's: spawned workers spend their first second importing everything again
        with dask.config.set({"distributed.worker.multiprocessing-method": start_method()}):
            cluster = LocalCluster(n_workers=max(1, workers or cpus()), threads_per_worker=1,
                                   processes=True, dashboard_address=None, env={ENV: "1"},
                                   local_directory=scratch)
        return Client(cluster), cluster
    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s"), None
    except (OSError, TimeoutError, ValueError) as e:
        raise ConfigError(f"--cluster {address}: cannot reach the scheduler "
                          f"({str(e).splitlines()[0] or type(e).__name__})") from None


def run_on_cluster(jobs: list[Job], medium: str, address: str, *, workers: int | None = None,
                   force: bool = False, seed: int = 0, options: Any = None,
                   on_outcome: Callable[[Outcome], None] | None = None,
                   on_client: Callable[[Any], None] | None = None) -> list[Outcome]:
    """:func:`run` on a Dask distributed scheduler at ``address`` (``"local"``: a
    ``LocalCluster`` of ``workers`` single-threaded processes on this machine). Paths go to the
    workers absolute, so a worker started in another folder reads and writes the same files;
    they must lie on a filesystem every worker sees. A worker lost mid-file has its files run
    again elsewhere (the scheduler's retries); its temporary files are removed at the end.
    ``on_client(client)`` is called once connected (tests use it to reach the workers).
    """
    import tempfile

    from dask.distributed import as_completed

    check_address(address)
    opts = _options(medium, options)
    records = _Records(medium, opts, seed)
    todo, outcomes = _pending(jobs, force, records)
    report = records.reporter(todo, outcomes, on_outcome)
    with tempfile.TemporaryDirectory(prefix="quanta-dask-") as scratch:
        client, cluster = _connect(address, workers, scratch)
        try:
            if on_client is not None:
                on_client(client)
            # files go in small groups, one task each, submitted at once and gathered as they
            # come: a task costs the scheduler about 2 ms, which per file would cost a third of
            # the throughput on 5-second clips
            groups = _groups(todo, max(1, workers or cpus()))
            pairs = [[(os.path.abspath(j.src), os.path.abspath(j.dst)) for j in g] for g in groups]
            n = len(groups)
            futures = client.map(work_group, [medium] * n, pairs, [force] * n, [seed] * n, [opts] * n,
                                 pure=False, retries=2)
            group_of = {f.key: g for f, g in zip(futures, groups)}
            try:
                for f, results in as_completed(futures, with_results=True):
                    for j, result in zip(group_of[f.key], results):  # the paths as the user gave them
                        report(dataclasses.replace(result, src=str(j.src), dst=str(j.dst)))
            except BaseException:
                client.cancel(futures)  # a remote worker must not write after quanta has stopped
                raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            _remove_stale_temporaries(todo)
    return _in_order(jobs, outcomes)


#: the most files one cluster task carries (fewer when there are few files per worker)
GROUP = 8


def _groups(jobs: list[Job], workers: int) -> list[list[Job]]:
    """Consecutive groups of at most :data:`GROUP` jobs, at least 4 groups per worker."""
    size = max(1, min(GROUP, len(jobs) // (4 * workers)))
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def work_group(medium: str, pairs: list[tuple[str, str]], force: bool, seed: int,
               options: Any) -> list[Outcome]:
    """:func:`work` on each ``(src, dst)`` in turn (one cluster task); a retried group finds the
    outputs its lost worker finished already complete."""
    return [work(medium, src, dst, force, seed, options) for src, dst in pairs]


def _remove_stale_temporaries(jobs: list[Job]) -> None:
    """Temporary files of this batch's outputs that a killed worker could not remove."""
    for j in jobs:
        try:
            stale = list(j.dst.parent.glob(glob.escape(temporary_prefix(j.dst)) + "*"))
        except OSError:
            continue
        for p in stale:
            if p.is_file():
                p.unlink(missing_ok=True)


def totals(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    """Files done/skipped/failed (``missed``: done, but their target missed), bytes in and out,
    wall time (s) and input MB/s."""
    done = [o for o in outcomes if o.status == "done"]
    size_in = sum(o.bytes_in for o in done)
    return {"files": len(outcomes), "done": len(done),
            "skipped": sum(o.status == "skipped" for o in outcomes),
            "failed": sum(o.status == "failed" for o in outcomes),
            "missed": sum(o.missed for o in outcomes),
            "bytes_in": size_in, "bytes_out": sum(o.bytes_out for o in done),
            "seconds": seconds, "mb_per_s": size_in / 1e6 / seconds if seconds > 0 else None}
