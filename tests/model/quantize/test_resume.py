"""Resumable runs (``quantize --resume``): an interrupted run continues from its work folder and
writes the same bytes as a run never interrupted; without ``--resume`` nothing is left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quanta.errors import InputError
from quanta.media import get
from quanta.model.quantize import resume

KW = {"calib_samples": 8, "calib_len": 64}


def _files(path: Path) -> dict[str, bytes]:
    """Every file's bytes by relative name (a folder) or the file's bytes."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from quanta.model.sources.tiny import write_hf_folder

    return write_hf_folder(tmp_path_factory.mktemp("resume") / "tiny-llama", seed=0, num_hidden_layers=4)


def _interrupted(monkeypatch, source, out, block: int, **options) -> None:
    """Run ``quanta model quantize … --resume`` and interrupt it (as by Ctrl-C) right after block
    ``block`` is kept."""
    keep = resume.WorkFolder.save_block

    def save_then_stop(self, i, *args, **kwargs):
        keep(self, i, *args, **kwargs)
        if i == block:
            raise KeyboardInterrupt

    m = get("model")
    with monkeypatch.context() as mp:
        mp.setattr(resume.WorkFolder, "save_block", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            m.write(source, out, m.options(**KW, **options, work=resume.work_folder(out)))


@pytest.mark.parametrize("extra", [{}, {"format": "gguf"}, {"method": "awq"}],
                         ids=["default", "gguf", "awq"])
def test_an_interrupted_run_resumes_to_the_same_bytes(source, tmp_path, monkeypatch, extra):
    m = get("model")
    suffix = ".gguf" if extra.get("format") else ""
    ref, out = tmp_path / f"ref{suffix}", tmp_path / f"out{suffix}"
    m.write(source, ref, m.options(**KW, **extra))
    work = resume.work_folder(out)
    _interrupted(monkeypatch, source, out, 1, **extra)
    assert not out.exists()
    kept = sorted(p.name for p in work.iterdir())
    assert {"block-0000.safetensors", "block-0001.safetensors", "inputs.safetensors", "run.json"} <= set(kept)
    assert "block-0002.safetensors" not in kept
    m.write(source, out, m.options(**KW, **extra, work=work))
    assert _files(out) == _files(ref)
    assert not work.exists()  # a finished run removes its work folder


def test_a_resumed_run_reads_the_kept_blocks(source, tmp_path, monkeypatch):
    """The blocks the first run finished are not quantized again."""
    from quanta.model.quantize import apply

    m = get("model")
    out = tmp_path / "out"
    work = resume.work_folder(out)
    _interrupted(monkeypatch, source, out, 2, uniform=True)
    quantized: list[str] = []
    replace = apply._Installer.replace
    monkeypatch.setattr(apply._Installer, "replace",
                        lambda self, block, *a, **k: (quantized.extend(n for n, _ in block),
                                                      replace(self, block, *a, **k))[1])
    m.write(source, out, m.options(**KW, work=work, uniform=True))
    assert quantized and all(n.startswith("model.layers.3.") for n in quantized)


def test_a_work_folder_of_another_run_is_refused(source, tmp_path, monkeypatch):
    m = get("model")
    out = tmp_path / "out"
    work = resume.work_folder(out)
    _interrupted(monkeypatch, source, out, 0)
    with pytest.raises(InputError, match="another run"):
        m.write(source, out, m.options(**KW, bits=3, work=work))
    with pytest.raises(InputError, match="another run"):
        m.write(source, out, m.options(**KW, work=work), seed=1)
    assert work.exists() and not out.exists()


def test_without_resume_an_interrupted_run_leaves_nothing(source, tmp_path, monkeypatch):
    from quanta.model.quantize import calibrate

    m = get("model")
    out = tmp_path / "out"
    run_block = calibrate.run_block
    calls = [0]

    def stop_midway(*a, **k):
        calls[0] += 1
        if calls[0] > 20:
            raise KeyboardInterrupt
        return run_block(*a, **k)

    monkeypatch.setattr(calibrate, "run_block", stop_midway)
    with pytest.raises(KeyboardInterrupt):
        m.write(source, out, m.options(**KW))
    assert list(tmp_path.iterdir()) == []


_SLOW_BLOCKS = (
    "import sys, time; from quanta.model.quantize import resume as r; k = r.WorkFolder.save_block; "
    "r.WorkFolder.save_block = lambda s, *a, **kw: (k(s, *a, **kw), time.sleep(0.3)); "
    "from quanta.cli.main import main_exit; sys.argv[0] = 'quanta'; main_exit()")


def test_a_killed_process_resumes_to_the_same_bytes(source, tmp_path):
    """``kill -9`` at a random block (the run made to pause after each kept block so that the
    kill lands there), then ``--resume``: the same bytes as a run never interrupted."""
    args = ["model", "quantize", str(source), "--calib-samples", "8", "--calib-len", "64", "--json"]
    ref, out = tmp_path / "ref", tmp_path / "out"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-c", _SLOW_BLOCKS, *args, "-o", str(ref)], check=True,
                   capture_output=True, env=env)
    block = random.Random(0).randrange(3)
    work = resume.work_folder(out)
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BLOCKS, *args, "-o", str(out), "--resume"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    marker = work / f"block-{block:04d}.safetensors"
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists() and not out.exists()
    done = subprocess.run([sys.executable, "-c", _SLOW_BLOCKS, *args, "-o", str(out), "--resume"],
                          capture_output=True, env=env)
    assert done.returncode == 0, done.stderr
    assert _files(out) == _files(ref)
    assert not work.exists()


def test_a_kept_loss_table_is_used_only_if_it_prices_the_formats_offered_now(tmp_path):
    """A work folder left by a quanta that offered other grids holds a table of other widths:
    it is measured again rather than read against the wrong formats."""
    import numpy as np

    from quanta.model.formats.weight import default_formats
    from quanta.model.quantize.recipe import saved_table

    work = resume.WorkFolder.open(tmp_path / "w", src="x", options={}, seed=0)
    cands = {"a": default_formats(4, 64), "token_embd": default_formats(4, 64)[:3]}
    assert saved_table(work, cands, ["a", "token_embd"]) is None  # nothing kept yet
    work.save_table({"a": np.arange(len(cands["a"]), dtype=float), "token_embd": np.zeros(3)})
    kept = saved_table(work, cands, ["a", "token_embd"])
    assert kept is not None and list(kept["a"]) == list(range(len(cands["a"])))
    assert saved_table(work, {**cands, "a": cands["a"][:7]}, ["a", "token_embd"]) is None  # other grids
    assert saved_table(work, cands, ["a"]) is None  # other units
