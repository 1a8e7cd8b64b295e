"""Finding a batch's input files, safely.

* :func:`find` turns one input — a file, a folder, or a glob pattern (``*``, ``?``, ``[...]``;
  ``**`` spans folders) — into :class:`Found` files, each with its path relative to where it
  was found (the folder, or the pattern's fixed root).
* Folders are walked with ``os.scandir``: a symlinked folder is followed, but every folder is
  entered at most once (by device and inode), so a link loop ends at once instead of nesting 40
  levels deep or running for minutes.
* A folder that cannot be listed, or a file that cannot be read, is returned as a
  :class:`Found` with an ``error`` — the batch reports it as a failure — never dropped.
* Folder walks skip hidden names (``.*``: macOS ``._*`` files, ``.git``); patterns follow
  glob's rule (a wildcard does not match a leading dot). quanta's own temporaries are never
  inputs. A pattern may not climb out of its root with ``..`` after a wildcard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from quanta.errors import InputError
from quanta.outputs import TMP_TAG

_MAGIC = set("*?[")


@dataclass(frozen=True)
class Found:
    """An input file (or an unreadable file or folder: ``error`` says why, in one line).
    path: as the user's input spells it. rel: relative to the folder or pattern root."""

    path: Path
    rel: Path
    error: str | None = None


def is_pattern(text: str) -> bool:
    """Whether ``text`` holds a glob wildcard."""
    return any(c in _MAGIC for c in text)


def pattern_root(pattern: str) -> Path:
    """The longest leading part of a glob pattern without wildcards (its folders only)."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if is_pattern(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _reason(e: OSError) -> str:
    return (e.strerror or type(e).__name__).lower()


def inode_key(path: Path | str) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` names (symlinks followed), or None where it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk(root: Path, *, depth: int | None, hidden: bool, skip: set[tuple[int, int]]) -> list[Found]:
    """Files under ``root`` (``depth``: folder levels to descend, None for all), sorted by path.
    ``skip``: folders (device, inode) never to enter — the output folder — and, as the walk
    goes, every folder already entered."""
    out: list[Found] = []
    start = inode_key(root)
    if start is not None:
        skip.add(start)
    stack: list[tuple[Path, Path, int]] = [(root, Path(), 0)]
    while stack:
        folder, rel, level = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            out.append(Found(folder, rel, f"{folder}: cannot list the folder ({_reason(e)})"))
            continue
        deeper = depth is None or level < depth  # below the depth asked for: not even looked at
        subfolders = [(f, rel / f.name, level + 1) for f in _scan(folder, rel, entries, hidden, deeper,
                                                                    skip, out)]
        stack.extend(reversed(subfolders))
    return sorted(out, key=lambda f: f.rel.parts)


def _scan(folder: Path, rel: Path, entries: list, hidden: bool, deeper: bool,
          skip: set[tuple[int, int]], out: list[Found]) -> list[Path]:
    """One folder's files appended to ``out``; its subfolders to enter returned (each one
    entered at most once: its (device, inode) joins ``skip``)."""
    subfolders = []
    for entry in entries:
        if TMP_TAG in entry.name or (entry.name.startswith(".") and not hidden):
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            key = inode_key(path) if deeper else None
            if key is not None and key not in skip:
                skip.add(key)
                subfolders.append(path)
        elif entry.is_file():
            readable = os.access(path, os.R_OK)
            err = None if readable else f"{path}: cannot read the file (permission denied)"
            out.append(Found(path, rel / entry.name, err))
    return subfolders


def _matches(parts: tuple[str, ...], pat: tuple[str, ...]) -> bool:
    """glob's matching of a relative path against pattern segments (``**``: any folders)."""
    if not pat:
        return not parts
    if pat[0] == "**":
        for i in range(len(parts) + 1):
            if _matches(parts[i:], pat[1:]):
                return True
            if i < len(parts) and parts[i].startswith("."):
                return False
        return False
    if not parts or (parts[0].startswith(".") and not pat[0].startswith(".")):
        return False
    return fnmatchcase(parts[0], pat[0]) and _matches(parts[1:], pat[1:])


def _could_hold(parts: tuple[str, ...], pat: tuple[str, ...]) -> bool:
    """Whether a folder at ``parts`` could hold a file the pattern matches."""
    if not parts or (pat and pat[0] == "**"):
        return True
    return len(pat) > 1 and fnmatchcase(parts[0], pat[0]) and _could_hold(parts[1:], pat[1:])


def find(item: str, *, recursive: bool, reads: tuple[str, ...],
         skip: set[tuple[int, int]]) -> list[Found]:
    """The files of one input (see the module's docstring). ``reads``: the extensions taken
    from a folder or a pattern (a file named explicitly is taken as it is)."""
    p = Path(item)
    if p.is_dir():
        return [f for f in walk(p, depth=None if recursive else 0, hidden=False, skip=set(skip))
                if f.error or f.path.suffix.lower() in reads]
    if p.is_file():
        return [Found(p, Path(p.name))]
    if p.exists():
        raise InputError(f"{item}: not a regular file")
    if not is_pattern(item):
        raise InputError(f"{item}: no such file or folder")
    return _find_pattern(item, reads, skip)


def _find_pattern(item: str, reads: tuple[str, ...], skip: set[tuple[int, int]]) -> list[Found]:
    root = pattern_root(item)
    pat = Path(item).parts[len(root.parts) if root != Path(".") else 0:]
    if ".." in pat:
        raise InputError(f"{item}: '..' after a wildcard could reach outside {root}; "
                         "name the folder without wildcards")
    depth = None if "**" in pat else len(pat) - 1
    files = walk(root, depth=depth, hidden=True, skip=set(skip)) if root.is_dir() else []
    hits = [f for f in files if _matches(f.rel.parts, pat)]
    # folders that could not be listed on the way are reported too
    hits += [f for f in files if f.error and not f.path.is_file() and _could_hold(f.rel.parts, pat)]
    if not hits:
        raise InputError(f"{item}: no file matches")
    taken = [f for f in hits if f.error or f.path.suffix.lower() in reads]
    if not taken:
        raise InputError(f"{item}: no file it matches has an extension this command reads "
                         f"({', '.join(reads)})")
    return taken
