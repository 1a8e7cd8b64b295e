"""The record of what a batch wrote: completion proven, not guessed from a file's name.

``OUTDIR/.quanta-batch.jsonl`` holds one JSON line per output quanta finished: its path
relative to OUTDIR, a digest of the medium, options and seed that made it, the input's
identity (absolute path, size, modification time) and the output's (size, modification time).
A re-run skips an output only when its line matches all of these; an output made with other
options, from a changed input, or changed since, is *stale*; one without a line is *foreign*
(the user's file, or an older quanta's). ``--force`` replaces only current or stale outputs.

Lines are appended as files finish (the parent process alone writes), so a killed run keeps
the record of everything it finished; the last line for an output wins and a torn last line
is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

NAME = ".quanta-batch.jsonl"


def options_digest(medium: str, options: Any, seed: int) -> str:
    """A short digest of what decides an output's bytes: the medium, its options (a medium's
    ``Options``) and the seed."""
    import dataclasses

    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    text = json.dumps({"medium": medium, "options": values, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _identity(path: Path) -> list[int] | None:
    """(size in bytes, modification time in ns) of a file, or of a folder's files together."""
    try:
        st = path.stat()
    except OSError:
        return None
    if path.is_dir():
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return [size, st.st_mtime_ns]
    return [st.st_size, st.st_mtime_ns]


class Manifest:
    """The record of one output folder (see the module's docstring)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.path = self.root / NAME
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                self.entries[str(entry["out"])] = entry
            except (ValueError, KeyError, TypeError):
                continue  # a torn line from a killed run

    def _rel(self, dst: Path) -> str:
        return os.path.relpath(os.path.abspath(dst), os.path.abspath(self.root))

    def state(self, src: Path, dst: Path, digest: str) -> str:
        """``absent`` (no output), ``current`` (written by quanta from this input with these
        options, unchanged since), ``stale`` (written by quanta, but with other options, from
        another or a changed input, or changed since) or ``foreign`` (no record)."""
        if not (dst.exists() or dst.is_symlink()):
            return "absent"
        entry = self.entries.get(self._rel(dst))
        if entry is None or dst.is_symlink():
            return "foreign"
        src_id = _identity(src)
        same = (entry.get("options") == digest and entry.get("src") == os.path.abspath(src)
                and src_id is not None and entry.get("src_id") == src_id
                and entry.get("out_id") == _identity(dst))
        return "current" if same else "stale"

    def record(self, src: Path, dst: Path, digest: str) -> None:
        """Append the line for a finished output."""
        entry = {"out": self._rel(dst), "options": digest, "src": os.path.abspath(src),
                 "src_id": _identity(src), "out_id": _identity(dst)}
        self.entries[entry["out"]] = entry
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
