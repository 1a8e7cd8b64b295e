"""Issue 13: many files per command — planning, worker processes, skips, failures, signals, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from quanta import batch
from quanta.audio.medium import Options as AudioOptions
from quanta.cli.main import main
from quanta.errors import ConfigError, InputError
from quanta.outputs import TMP_TAG

READS = (".wav", ".flac")


def _wav(path: Path, seconds: float = 0.5, seed: int = 0, rate: int = 44100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).standard_normal((int(rate * seconds), 2)) * 0.1
    sf.write(path, x, rate, subtype="PCM_24")
    return path


@pytest.fixture
def tree(tmp_path):
    """in/a.wav, in/b.flac, in/notes.txt, in/sub/c.wav, in/sub/deeper/d.wav"""
    root = tmp_path / "in"
    _wav(root / "a.wav", seed=1)
    _wav(root / "sub" / "c.wav", seed=3)
    _wav(root / "sub" / "deeper" / "d.wav", seed=4)
    x, rate = sf.read(_wav(tmp_path / "tmp.wav", seed=2))
    sf.write(root / "b.flac", x, rate, subtype="PCM_24")
    (root / "notes.txt").write_text("not audio")
    return root


def _rel(jobs, base):
    return sorted((str(j.src.relative_to(base)), str(j.dst.relative_to(base))) for j in jobs)


def test_plan_keeps_relative_paths_and_picks_readable_files(tree, tmp_path):
    out = tmp_path / "out"
    flat = batch.plan([tree], out, suffix_for=lambda p: ".flac", reads=READS)
    assert _rel(flat, tmp_path) == [("in/a.wav", "out/a.flac"), ("in/b.flac", "out/b.flac")]
    deep = batch.plan([tree], out, suffix_for=lambda p: ".flac", reads=READS, recursive=True)
    assert ("in/sub/deeper/d.wav", "out/sub/deeper/d.flac") in _rel(deep, tmp_path)
    assert len(deep) == 4


def test_plan_expands_patterns_from_their_fixed_root(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs = batch.plan(["in/**/*.wav"], "out", suffix_for=lambda p: p.suffix, reads=READS)
    assert sorted(str(j.dst) for j in jobs) == ["out/a.wav", "out/sub/c.wav", "out/sub/deeper/d.wav"]
    with pytest.raises(InputError, match="no file matches"):
        batch.plan(["in/*.mp3"], "out", suffix_for=lambda p: p.suffix, reads=READS)


def test_plan_refuses_collisions_missing_inputs_and_a_file_as_output(tree, tmp_path):
    x, rate = sf.read(tree / "a.wav")
    sf.write(tree / "a.flac", x, rate)
    with pytest.raises(ConfigError, match="would both be written"):
        batch.plan([tree], tmp_path / "out", suffix_for=lambda p: ".flac", reads=READS)
    with pytest.raises(InputError, match="no such file"):
        batch.plan([tmp_path / "nope.wav"], tmp_path / "out", suffix_for=lambda p: ".flac", reads=READS)
    with pytest.raises(ConfigError, match="names a file"):
        batch.plan([tree / "a.wav"], tree / "b.flac", suffix_for=lambda p: ".flac", reads=READS)
    with pytest.raises(InputError, match="no input files"):
        batch.plan([tree / "sub" / "deeper" / ".."], tmp_path / "o", suffix_for=str, reads=(".mp3",))


def test_plan_leaves_out_the_output_folder_inside_an_input(tree):
    out = tree / "converted"
    _wav(out / "a.wav", seed=9)  # an earlier run's output
    jobs = batch.plan([tree], out, suffix_for=lambda p: ".wav", reads=READS, recursive=True)
    assert not any("converted" in str(j.src) for j in jobs)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".quanta-batch.jsonl"}  # outputs, not the batch's record


def test_workers_give_the_bytes_of_one_process_and_of_the_single_file_command(tree, tmp_path):
    opts = AudioOptions(bits=16, shape="auto")
    jobs1 = batch.plan([tree], tmp_path / "one", suffix_for=lambda p: ".flac", reads=READS, recursive=True)
    jobs2 = batch.plan([tree], tmp_path / "two", suffix_for=lambda p: ".flac", reads=READS, recursive=True)
    seen = []
    a = batch.run(jobs1, "audio", workers=1, seed=5, options=opts)
    b = batch.run(jobs2, "audio", workers=2, seed=5, options=opts, on_outcome=seen.append)
    assert [o.status for o in a] == [o.status for o in b] == ["done"] * 4 and len(seen) == 4
    assert [o.src for o in b] == [str(j.src) for j in jobs2]  # outcomes come back in job order
    assert _bytes(tmp_path / "one") == _bytes(tmp_path / "two")
    single = tmp_path / "single.flac"
    assert main(["audio", "requantize", str(tree / "sub" / "c.wav"), str(single), "--seed", "5"]) == 0
    assert single.read_bytes() == (tmp_path / "two" / "sub" / "c.flac").read_bytes()


def test_a_bad_file_fails_alone_and_a_rerun_skips_complete_outputs(tree, tmp_path):
    (tree / "broken.wav").write_bytes(b"RIFF not really")
    jobs = batch.plan([tree], tmp_path / "out", suffix_for=lambda p: ".flac", reads=READS)
    first = {Path(o.src).name: o for o in batch.run(jobs, "audio", workers=2)}
    assert first["broken.wav"].status == "failed" and "broken.wav" in first["broken.wav"].error
    assert "\n" not in first["broken.wav"].error
    assert first["a.wav"].status == first["b.flac"].status == "done"
    stamp = (tmp_path / "out" / "a.flac").stat().st_mtime_ns
    again = {Path(o.src).name: o.status for o in batch.run(jobs, "audio", workers=2)}
    assert again == {"a.wav": "skipped", "b.flac": "skipped", "broken.wav": "failed"}
    assert (tmp_path / "out" / "a.flac").stat().st_mtime_ns == stamp
    forced = {Path(o.src).name: o.status for o in batch.run(jobs, "audio", workers=2, force=True)}
    assert forced["a.wav"] == "done"


def test_cli_batch_json_summary_and_exit_status(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["audio", "requantize", str(tree), "-o", str(out), "-R", "--format", "flac", "--json",
                 "-j", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["totals"]["done"] == 4 and res["totals"]["failed"] == 0
    assert res["totals"]["bytes_out"] == sum(p.stat().st_size for p in out.rglob("*.flac"))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.flac")) == [
        "a.flac", "b.flac", "sub/c.flac", "sub/deeper/d.flac"]
    assert sf.info(out / "sub" / "c.flac").subtype == "PCM_16"
    (tree / "bad.wav").write_bytes(b"nothing")
    assert main(["audio", "requantize", str(tree), "-o", str(out), "--format", "flac"]) == 2
    captured = capsys.readouterr()
    assert "bad.wav" in captured.err and "skipped" in captured.out


def test_cli_rejects_batch_options_without_an_output_folder(tree, tmp_path, capsys):
    assert main(["audio", "requantize", str(tree / "a.wav"), str(tmp_path / "x.flac"), "-j", "2"]) == 2
    assert main(["audio", "requantize", str(tree / "a.wav"), str(tree / "b.flac"),
                 str(tmp_path / "x.flac")]) == 2
    assert main(["audio", "requantize", str(tree / "a.wav"), str(tmp_path / "x.flac"), "--format",
                 "wav"]) == 2
    err = capsys.readouterr().err
    assert "-o OUTDIR" in err and "Traceback" not in err
    assert not (tmp_path / "x.flac").exists()


def test_image_batch_encodes_every_image(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "in").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "in" / f"p{i}.png")
    assert main(["image", "encode", str(tmp_path / "in" / "*.png"), "-o", str(tmp_path / "out"), "-q", "80",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["done"] == 3
    for i in range(3):
        assert Image.open(tmp_path / "out" / f"p{i}.jpg").size == (56, 40)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_batch_leaves_only_complete_outputs(tmp_path, sig, code):
    from quanta.audio.generate import write

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        write(src / f"long{i}.wav", "music", seconds=60, rate_hz=48000, channels=2, seed=i)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "quanta.cli", "audio", "requantize", str(src), "-o", str(out),
                          "--format", "flac", "-j", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if out.exists() and any(TMP_TAG in f.name for f in out.iterdir()):
            break
        time.sleep(0.02)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "(interrupted)" in err or "(interrupted)" in _  # the summary of what was finished
    made = list(out.iterdir()) if out.exists() else []  # a folder left empty is removed
    assert not [f for f in made if TMP_TAG in f.name]
    for f in made:  # whatever finished is whole (and recorded)
        assert f.name == ".quanta-batch.jsonl" or sf.info(f).frames == 60 * 48000


def test_dask_cluster_survives_a_killed_worker_with_identical_outputs(tmp_path):
    pytest.importorskip("dask.distributed", reason="quanta[cluster] is installed by make test")
    src = tmp_path / "in"
    for i in range(10):
        _wav(src / f"f{i:02d}.wav", seconds=8, seed=i, rate=48000)
    opts = AudioOptions(bits=16, shape="auto")
    ref = batch.run(batch.plan([src], tmp_path / "ref", suffix_for=lambda p: ".flac", reads=READS),
                    "audio", workers=1, seed=3, options=opts)
    assert all(o.status == "done" for o in ref)
    jobs = batch.plan([src], tmp_path / "dask", suffix_for=lambda p: ".flac", reads=READS)
    state: dict = {"killed": None}

    def kill_a_busy_worker(outcome):
        client = state["client"]
        if state["killed"] is not None:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            state["killed"] = pid

    got = batch.run_on_cluster(jobs, "audio", "local", workers=2, seed=3, options=opts,
                               on_client=lambda c: state.update(client=c), on_outcome=kill_a_busy_worker)
    assert state["killed"] is not None, "no worker was busy to kill"
    assert [o.status for o in got] == ["done"] * 10
    assert _bytes(tmp_path / "dask") == _bytes(tmp_path / "ref")


def test_cli_cluster_local_gives_the_files_of_the_pool(tmp_path, capsys):
    pytest.importorskip("dask.distributed", reason="quanta[cluster] is installed by make test")
    from PIL import Image

    rng = np.random.default_rng(2)
    for i in range(3):
        (tmp_path / "in").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(tmp_path / "in" / f"p{i}.png")
    assert main(["image", "encode", str(tmp_path / "in"), "-o", str(tmp_path / "pool"), "--json"]) == 0
    capsys.readouterr()
    assert main(["image", "encode", str(tmp_path / "in"), "-o", str(tmp_path / "dask"), "--cluster", "local",
                 "-j", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["done"] == 3
    assert _bytes(tmp_path / "pool") == _bytes(tmp_path / "dask") and len(_bytes(tmp_path / "dask")) == 3


def test_adaptive_shaping_gives_the_same_bytes_alone_in_a_pool_and_on_dask(tmp_path, capsys):
    pytest.importorskip("dask.distributed", reason="quanta[cluster] is installed by make test")
    src = tmp_path / "in"
    for i in range(3):
        _wav(src / f"f{i}.wav", seconds=2, seed=i, rate=44100)
    common = ["--bits", "16", "--shape", "adaptive", "--seed", "5", "--json"]
    (tmp_path / "alone").mkdir()
    for f in sorted(src.iterdir()):
        assert main(["audio", "requantize", str(f), str(tmp_path / "alone" / f.name), *common]) == 0
    assert main(["audio", "requantize", str(src), "-o", str(tmp_path / "pool"), "-j", "2", *common]) == 0
    assert main(["audio", "requantize", str(src), "-o", str(tmp_path / "dask"), "--cluster", "local",
                 "-j", "1", *common]) == 0
    capsys.readouterr()
    alone = _bytes(tmp_path / "alone")
    assert len(alone) == 3 and _bytes(tmp_path / "pool") == alone == _bytes(tmp_path / "dask")
