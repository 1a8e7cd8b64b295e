"""Finding a batch's inputs (probe 2026-12-05: H1 link loops, H2 unreadable folders, M6 hidden
files, M10 '..' after a wildcard, L4 duplicates)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from quanta import batch
from quanta.errors import ConfigError, InputError
from quanta.walk import find

READS = (".wav", ".flac")


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def _names(found):
    return sorted(str(f.rel) for f in found if f.error is None)


def test_a_pattern_enters_a_symlink_loop_once_and_ends_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "sl" / "a.flac")
    os.symlink(".", tmp_path / "sl" / "loop")  # a self-loop
    os.symlink("../sl", tmp_path / "sl" / "up")  # and a second route back
    t0 = time.perf_counter()
    found = find("sl/**/*.flac", recursive=False, reads=READS, skip=set())
    assert time.perf_counter() - t0 < 2.0
    assert _names(found) == ["a.flac"]  # not 41 copies at every depth of the loop
    assert _names(find("sl", recursive=True, reads=READS, skip=set())) == ["a.flac"]


def test_a_symlinked_folder_outside_the_tree_is_followed_once(tmp_path):
    _touch(tmp_path / "elsewhere" / "b.wav")
    _touch(tmp_path / "lib" / "a.wav")
    os.symlink(tmp_path / "elsewhere", tmp_path / "lib" / "linked")
    assert _names(find(str(tmp_path / "lib"), recursive=True, reads=READS, skip=set())) == [
        "a.wav", "linked/b.wav"]


def test_a_folder_that_cannot_be_listed_is_reported_not_dropped(tmp_path, monkeypatch):
    _touch(tmp_path / "lib" / "ok" / "a.flac")
    _touch(tmp_path / "lib" / "locked" / "b.flac")
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    for item in (str(tmp_path / "lib"), str(tmp_path / "lib" / "**" / "*.flac")):
        found = find(item, recursive=True, reads=READS, skip=set())
        assert _names(found) == ["ok/a.flac"]
        errors = [f.error for f in found if f.error]
        assert len(errors) == 1 and "locked" in errors[0] and "permission denied" in errors[0]


def test_hidden_files_and_quanta_temporaries_are_not_inputs(tmp_path, monkeypatch):
    _touch(tmp_path / "lib" / "a.wav")
    _touch(tmp_path / "lib" / "._a.wav")  # macOS AppleDouble
    _touch(tmp_path / "lib" / ".a.wav.quanta-tmp-8q94172m.wav")  # a killed run's leftover
    _touch(tmp_path / "lib" / ".git" / "c.wav")
    assert _names(find(str(tmp_path / "lib"), recursive=True, reads=READS, skip=set())) == ["a.wav"]
    monkeypatch.chdir(tmp_path)
    assert _names(find("lib/*", recursive=False, reads=READS, skip=set())) == ["a.wav"]
    assert _names(find("lib/.*", recursive=False, reads=READS, skip=set())) == ["._a.wav"]


def test_patterns_take_only_readable_extensions_and_refuse_climbing_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "alib" / "a.flac")
    _touch(tmp_path / "alib" / "readme.txt")
    assert _names(find("alib/*", recursive=False, reads=READS, skip=set())) == ["a.flac"]
    with pytest.raises(InputError, match="extension"):
        find("alib/*.txt", recursive=False, reads=READS, skip=set())
    with pytest.raises(InputError, match=r"'\.\.' after a wildcard"):
        find("al[i]b/../alib/a.flac", recursive=False, reads=READS, skip=set())


def test_every_output_stays_in_outdir_and_a_file_named_twice_is_taken_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "alib" / "a.flac")
    jobs = batch.plan(["alib/a.flac", "alib/a.flac", "alib", "alib/*.flac"], "out",
                      suffix_for=lambda p: ".flac", reads=READS)
    assert [(str(j.src), str(j.dst)) for j in jobs] == [("alib/a.flac", "out/a.flac")]
    for j in batch.plan(["al*/*.flac"], "esc", suffix_for=lambda p: ".flac", reads=READS):
        assert Path(j.dst).resolve().is_relative_to((tmp_path / "esc").resolve())


def test_outdir_as_the_input_folder_or_an_input_as_its_own_output_is_refused(tmp_path):
    lib = tmp_path / "blib"
    _touch(lib / "a.wav")
    with pytest.raises(ConfigError, match="-o is this input folder"):
        batch.plan([lib], lib, suffix_for=lambda p: ".wav", reads=READS, recursive=True)
    with pytest.raises(ConfigError, match="would replace it"):
        batch.plan([lib / "a.wav"], lib, suffix_for=lambda p: ".wav", reads=READS)
