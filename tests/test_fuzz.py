"""A seeded mutation fuzz over valid WAV, FLAC, PNG, GGUF and safetensors inputs (320 cases):
every case must end in success (exit 0) or one line and exit 2 — never a traceback (exit 1), a
hang (a per-case alarm), or a file left behind."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from quanta.cli.main import main
from quanta.outputs import leftovers

CASE_SECONDS = 20


class HangError(Exception):
    pass


def mutate(data: bytes, rng: np.random.Generator, protect: int = 0) -> bytes:
    """Flip bytes, truncate, or splice random bytes (``protect``: leading bytes kept, to reach
    past the magic number more often)."""
    b = bytearray(data)
    kind = rng.integers(0, 4)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.integers(1, 9)):
            i = int(rng.integers(protect, len(b)))
            b[i] = int(rng.integers(0, 256))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == 2:  # splice random bytes in
        i = int(rng.integers(protect, len(b)))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8).tobytes()
    else:  # overwrite a header-sized run near the start with extreme values
        i = int(rng.integers(protect, min(len(b), 512)))
        b[i:i + 8] = bytes([0xFF] * 8) if rng.random() < 0.5 else bytes(8)
    return bytes(b)


def _seeds(tmp: Path) -> dict[str, tuple[Path, list[str], int]]:
    """Valid inputs, the command to run on each (with IN/OUT placeholders), and bytes to keep."""
    from quanta.model.sources.tiny import write_hf_folder
    from tests.model.conftest import tiny_llama, write_tiny_gguf

    x = np.random.default_rng(0).normal(0, 0.2, (2400, 2))
    wav, flac, png = tmp / "seed.wav", tmp / "seed.flac", tmp / "seed.png"
    sf.write(wav, x, 48000, subtype="FLOAT")
    sf.write(flac, x, 48000, subtype="PCM_24")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(png)
    gguf = write_tiny_gguf(tiny_llama(), tmp / "seed.gguf")
    hf = write_hf_folder(tmp / "hf", hidden=64)
    return {
        "wav": (wav, ["audio", "requantize", "IN", "OUT.flac", "--bits", "12"], 4),
        "flac": (flac, ["audio", "requantize", "IN", "OUT.wav", "--bits", "8"], 4),
        "png": (png, ["image", "encode", "IN", "OUT.jpg", "-q", "60"], 8),
        "gguf": (gguf, ["model", "info", "IN", "--json"], 4),
        "safetensors": (hf / "model.safetensors", ["model", "info", "HF", "--json"], 0),
    }


CASES = [("wav", 80), ("flac", 60), ("png", 80), ("gguf", 60), ("safetensors", 40)]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seeds(tmp_path_factory.mktemp("seeds"))


@pytest.mark.parametrize("kind,count", CASES)
def test_mutated_inputs_end_cleanly(kind, count, seeds, tmp_path, capsys):
    import shutil

    seed_path, command, protect = seeds[kind]
    data = seed_path.read_bytes()
    rng = np.random.default_rng(sum(map(ord, kind)))

    def on_alarm(signum, frame):
        raise HangError

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        for case in range(count):
            work = tmp_path / f"case{case}"
            work.mkdir()
            if kind == "safetensors":
                shutil.copytree(seed_path.parent, work / "hf")
                target = work / "hf" / "model.safetensors"
            else:
                target = work / seed_path.name
            target.write_bytes(mutate(data, rng, protect))
            args = [a.replace("IN", str(target)).replace("HF", str(work / "hf"))
                    .replace("OUT", str(work / "out")) for a in command]
            signal.alarm(CASE_SECONDS)
            try:
                rc = main(args)
            except HangError:
                pytest.fail(f"{kind} case {case}: no answer within {CASE_SECONDS} s")
            finally:
                signal.alarm(0)
            err = capsys.readouterr().err.strip()
            assert rc in (0, 2), f"{kind} case {case}: exit {rc}: {err}"
            if rc == 2:
                assert len(err.splitlines()) == 1 and err.startswith("quanta: "), err
                assert not any(p.name.startswith("out") for p in work.iterdir())
            assert leftovers(work) == []
    finally:
        signal.signal(signal.SIGALRM, previous)


BATCH_ROUNDS = [("wav", ["audio", "requantize", "--bits", "12", "--format", "flac"], ".flac"),
                ("png", ["image", "encode", "-q", "60"], ".jpg")]


@pytest.mark.parametrize("kind,command,suffix", BATCH_ROUNDS)
def test_mutated_inputs_among_good_ones_in_one_batch(kind, command, suffix, seeds, tmp_path, capsys):
    """Issue 23: a batch of good files with mutated ones among them (two worker processes): every
    good one written, every bad one reported on one line, exit 2 (or 0 when every mutation
    happened to stay readable), nothing left behind."""
    seed_path, _, protect = seeds[kind]
    data = seed_path.read_bytes()
    rng = np.random.default_rng(7 + sum(map(ord, kind)))
    src = tmp_path / "in"
    src.mkdir()
    good = [f"good{i}{seed_path.suffix}" for i in range(4)]
    bad = [f"bad{i}{seed_path.suffix}" for i in range(12)]
    for name in good:
        (src / name).write_bytes(data)
    for name in bad:
        (src / name).write_bytes(mutate(data, rng, protect))
    out = tmp_path / "out"
    rc = main([*command[:2], str(src), "-o", str(out), "-j", "2", "--json", *command[2:]])
    res = json.loads(capsys.readouterr().out)
    files = {Path(f["src"]).name: f for f in res["files"]}
    assert set(files) == set(good) | set(bad)
    assert all(files[g]["status"] == "done" for g in good)
    for name in good:
        assert (out / Path(name).with_suffix(suffix)).exists()
    failed = [f for f in files.values() if f["status"] == "failed"]
    assert failed and rc == 2  # this seed mutates at least one file beyond reading
    for f in failed:  # one line each, naming its file; and no output for it
        assert "\n" not in f["error"] and Path(f["src"]).name in f["error"]
        assert not (out / Path(f["src"]).with_suffix(suffix).name).exists()
    assert [p for p in out.rglob("*") if ".quanta-tmp-" in p.name] == []
