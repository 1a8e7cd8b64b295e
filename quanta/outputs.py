"""Writing outputs safely: the checks before, the atomic write, the clean-up after.

Every file command goes through here (via :meth:`quanta.media.Medium.write`):

* :func:`check_output` refuses an output that is an input (through symlinks and hard links),
  ``.``/``..`` or a folder holding an input, one that exists without ``force``, and, even with
  ``force``, anything quanta did not write (a folder without quanta's mark, a folder where a
  file is expected);
* :func:`atomic_output` hands out a temporary path beside the target and moves it into place
  only when the work succeeded. On any exception — ``KeyboardInterrupt`` and the CLI's SIGTERM
  included — the temporary file or folder is removed and an existing target is left as it was.
  A folder replaces an older one by an atomic exchange (``renameat2(RENAME_EXCHANGE)`` on
  Linux), so there is no moment when neither exists. A stop signal the CLI received
  (:data:`quanta.errors.STOPS`) cancels the move even if its exception was swallowed on the way.
Outputs get the user's umask like any other tool's (temporary files start private).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from quanta.errors import STOPS, OutputError, raise_stop

TMP_TAG = ".quanta-tmp-"


def _same(a: Path, b: Path) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _contains(folder: Path, inner: Path) -> bool:
    """True when ``inner`` lies inside ``folder`` (resolved, symlinks followed)."""
    f, i = folder.resolve(), inner.resolve()
    return f == i or f in i.parents


def check_output(out: Path | str, *, force: bool, inputs: tuple[Path | str, ...] = (),
                 folder: bool = False, owns: Callable[[Path], bool] | None = None) -> Path:
    """Refuse an output path that would destroy something the user did not ask to replace.

    folder: the output is a folder (else a file). owns: for folders, tells whether an existing
    folder is one quanta wrote (only such a folder is replaced with ``force``).
    """
    out = Path(out)
    if out.name in ("", ".", "..") or out.resolve() == Path.cwd().resolve():
        raise OutputError(f"{out}: refusing to write over '.', '..' or the working folder")
    for inp in map(Path, inputs):
        if _same(inp, out):
            raise OutputError(f"{out}: output path is the same as the input")
        if out.exists() and out.is_dir() and _contains(out, inp):
            raise OutputError(f"{out}: output folder holds the input {inp}")
    if not out.parent.exists():
        raise OutputError(f"{out.parent}: folder does not exist")
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputError(f"{out} exists; pass --force to overwrite it")
        _check_replaceable(out, folder, owns)
    return out


def check_suffix(path: Path | str, suffixes: tuple[str, ...], what: str) -> Path:
    """Refuse an output name whose extension disagrees with the format written."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise OutputError(f"{p}: {what} is written as {suffixes[0][1:].upper()} (use a "
                          f"{' or '.join(suffixes)} name)")
    return p


def _check_replaceable(out: Path, folder: bool, owns: Callable[[Path], bool] | None) -> None:
    if folder:
        if out.is_symlink() or not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder; refusing to replace it")
        if owns is None or not owns(out):
            raise OutputError(f"{out} exists and is not a folder quanta wrote; refusing to "
                              "replace it (choose another output)")
    elif out.is_dir():
        raise OutputError(f"{out} is a folder; refusing to replace it with a file")
    elif owns is not None and not owns(out):
        raise OutputError(f"{out} exists and is not a file quanta wrote; refusing to replace it")


def check_only_ours(folder: Path | str, names: tuple[str, ...]) -> None:
    """Refuse to replace a folder quanta wrote that now also holds files it did not write (a
    user's notes, logs, sub-folders): ``--force`` must not delete them with it."""
    extra = sorted(p.name for p in Path(folder).iterdir() if p.name not in names)
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise OutputError(f"{folder} also holds files quanta did not write ({shown}); refusing to "
                          "replace it (move them out, or choose another output)")


def umask() -> int:
    """The process's umask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)


#: a file name's longest length in bytes on the filesystems quanta writes to (NAME_MAX)
NAME_MAX = 255


def temporary_prefix(out: Path) -> str:
    """``.NAME.quanta-tmp-`` for a temporary beside ``out``, with NAME shortened so that the
    temporary's name (8 random characters and the extension added) stays within NAME_MAX: a
    legal 240-byte output name must not fail for its temporary's sake."""
    room = NAME_MAX - len(TMP_TAG.encode()) - 1 - 8 - len(out.suffix[:16].encode())
    name = out.name.encode()[:room].decode(errors="ignore")
    return f".{name}{TMP_TAG}"


@contextmanager
def atomic_output(out: Path | str, *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` (a file, or an empty folder when ``folder``);
    move it onto ``out`` only if the block succeeds, else remove it."""
    out = Path(out)
    prefix = temporary_prefix(out)
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=out.suffix[:16], dir=out.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if STOPS:
            raise_stop(STOPS[0])
        os.chmod(tmp, (0o777 if folder else 0o666) & ~umask())
        _move_into_place(tmp, out, folder)
    finally:
        _remove(tmp)


def _move_into_place(tmp: Path, out: Path, folder: bool) -> None:
    if not folder or not out.exists():
        os.replace(tmp, out)
        return
    if _exchange(tmp, out):  # tmp now holds the old folder; removed by the caller's finally
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}{TMP_TAG}old-", dir=out.parent))
    moved = False
    try:
        os.replace(out, old / "old")
        moved = True
        os.replace(tmp, out)
        moved = False
    finally:
        if moved and not out.exists():  # interrupted between the renames: the old one goes back
            os.replace(old / "old", out)
        _remove(old)


def leftovers(folder: Path | str) -> list[Path]:
    """Temporary files or folders quanta left in ``folder`` (for tests and clean-up checks)."""
    return sorted(p for p in Path(folder).iterdir() if TMP_TAG in p.name)
