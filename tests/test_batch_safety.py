"""Batches under hostile conditions (issue 23; probe 2026-12-05): completion proven by the output
folder's record, --force only over quanta's outputs, options checked once, missed targets and
notes accounted, dead and orphaned workers, hang-ups, clusters whose workers live elsewhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from quanta import batch
from quanta.cli.main import main
from quanta.media import MEDIA, Medium
from quanta.outputs import TMP_TAG

READS = (".wav", ".flac")
QUANTA = [sys.executable, "-m", "quanta.cli"]


def _wav(path: Path, seconds: float = 0.3, seed: int = 0, rate: int = 44100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).standard_normal((int(rate * seconds), 2)) * 0.1
    sf.write(path, x, rate, subtype="PCM_24")
    return path


def _pngs(folder: Path, n: int = 3, size=(48, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TMP_TAG in p.name] if folder.exists() else []


# ----------------------------------------------------------------------------- completion (M2, M3)

def test_a_rerun_with_other_options_is_not_taken_as_complete(tmp_path, capsys):
    src = tmp_path / "in"
    _wav(src / "a.wav", seed=1)
    _wav(src / "b.wav", seed=2)
    out = tmp_path / "out"

    def run(*args):
        return main(["audio", "requantize", str(src), "-o", str(out), "--format", "flac", *args])

    assert run("--bits", "16", "--json") == 0
    capsys.readouterr()
    assert run("--bits", "16", "--json") == 0
    assert json.loads(capsys.readouterr().out)["totals"]["skipped"] == 2  # same options: proven complete
    assert run("--bits", "8", "--json") == 2
    res = json.loads(capsys.readouterr().out)
    assert res["totals"]["failed"] == 2 and "other options" in res["files"][0]["error"]
    assert sf.info(out / "a.flac").subtype == "PCM_16"  # untouched
    assert run("--bits", "8", "--force") == 0
    assert sf.info(out / "a.flac").subtype == "PCM_S8"
    capsys.readouterr()
    _wav(src / "a.wav", seed=9, seconds=0.4)  # the input changed: its output is stale
    assert run("--bits", "8", "--json") == 2
    files = {Path(f["src"]).name: f for f in json.loads(capsys.readouterr().out)["files"]}
    assert files["a.wav"]["status"] == "failed" and files["b.wav"]["status"] == "skipped"


def test_force_never_replaces_a_file_quanta_did_not_write(tmp_path, capsys):
    kod = _pngs(tmp_path / "kod", 2)
    out = tmp_path / "kodu"
    out.mkdir()
    (out / "p0.jpg").write_text("precious")
    (out / "p1.jpg").write_bytes(b"")
    for extra in ([], ["--force"]):
        assert main(["image", "encode", str(kod), "-o", str(out), "--json", *extra]) == 2
        res = json.loads(capsys.readouterr().out)
        assert res["totals"]["failed"] == 2 and "no record" in res["files"][0]["error"]
        assert (out / "p0.jpg").read_text() == "precious" and (out / "p1.jpg").read_bytes() == b""


# ----------------------------------------------------------------------------- options, targets, notes

@pytest.mark.parametrize("args", [["image", "encode", "-q", "0"],
                                  ["image", "encode", "--subsampling", "4:1:1"],
                                  ["audio", "requantize", "--bits", "0"],
                                  ["audio", "requantize", "--shape", "nosuch"]])
def test_a_bad_option_fails_once_before_any_work(args, tmp_path, capsys):
    inputs = _pngs(tmp_path / "in", 3) if args[0] == "image" else _wav(tmp_path / "in" / "a.wav").parent
    _wav(inputs / "b.wav") if args[0] == "audio" else None
    out = tmp_path / "out"
    assert main([*args[:2], str(inputs), "-o", str(out), *args[2:]]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert not out.exists()


def test_a_missed_target_is_counted_and_exits_3_in_a_batch_and_alone(tmp_path, capsys):
    kod = _pngs(tmp_path / "kod", 2, size=(96, 128))
    out = tmp_path / "kodt"
    assert main(["image", "encode", str(kod), "-o", str(out), "--target-size", "300", "--json"]) == 3
    res = json.loads(capsys.readouterr().out)
    assert res["totals"]["missed"] == 2 and res["totals"]["failed"] == 0
    t = res["files"][0]["target"]
    assert t["kind"] == "size" and t["met"] is False and t["value"] > 300
    assert main(["image", "encode", str(kod / "p0.png"), str(tmp_path / "one.jpg"), "--target-size",
                 "300"]) == 3
    assert "target not met" in capsys.readouterr().err
    assert (tmp_path / "one.jpg").exists()  # the closest file is written
    assert main(["image", "encode", str(kod), "-o", str(tmp_path / "ok"), "--target-size", "1MB"]) == 0


def test_each_files_notes_reach_the_batch_summary_and_json(tmp_path, capsys):
    src = tmp_path / "img"
    src.mkdir()
    Image.new("RGBA", (16, 16), (10, 20, 30, 128)).save(src / "rgba.png")
    Image.new("CMYK", (16, 16), (1, 2, 3, 4)).save(src / "cmyk.jpg")
    assert main(["image", "encode", str(src), "-o", str(tmp_path / "o"), "--json"]) == 0
    notes = {Path(f["src"]).name: f["notes"] for f in json.loads(capsys.readouterr().out)["files"]}
    assert any("alpha" in n for n in notes["rgba.png"]) and any("CMYK" in n for n in notes["cmyk.jpg"])
    assert main(["image", "encode", str(src), "-o", str(tmp_path / "o2")]) == 0
    assert "alpha channel dropped" in capsys.readouterr().err


# ----------------------------------------------------------------------------- dying workers (M5)

@dataclass(frozen=True)
class Options:
    """The dying medium takes no options."""


def quantize_file(src, dst, options: Options, *, seed=0, progress=None):
    """A medium whose worker dies (SIGKILL, as the OOM killer does) on files named die*: once
    for die-once (a marker beside it remembers), always for die-always."""
    from tests.toy_medium import ToyReport

    src = Path(src)
    marker = src.with_suffix(".died")
    if src.stem == "die-always" or (src.stem == "die-once" and not marker.exists()):
        marker.touch()
        Path(dst).write_text("partial")  # the temporary output a killed worker leaves
        os.kill(os.getpid(), signal.SIGKILL)
    Path(dst).write_text(src.read_text())
    return ToyReport(str(src), str(dst), 1, 0.0)


@pytest.fixture
def dying():
    MEDIA["dying"] = Medium("dying", "test: workers that die", __name__, suffix=".txt", reads=(".txt",))
    yield "dying"
    MEDIA.pop("dying")


def test_a_killed_worker_fails_only_its_file_which_is_retried_once(tmp_path, dying):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "die-once", "c", "die-always", "d"):
        (src / f"{name}.txt").write_text(name)
    jobs = batch.plan([src], tmp_path / "out", suffix_for=lambda p: ".txt", reads=(".txt",))
    got = {Path(o.src).stem: o for o in batch.run(jobs, dying, workers=2)}
    assert {k: o.status for k, o in got.items()} == {"a": "done", "b": "done", "c": "done", "d": "done",
                                                     "die-once": "done", "die-always": "failed"}
    assert "worker process died" in got["die-always"].error and "retried alone" in got["die-always"].error
    assert (tmp_path / "out" / "die-once.txt").read_text() == "die-once"
    assert not _leftovers(tmp_path / "out")


# ----------------------------------------------------------------------------- signals (M11, M19)

def _long_wavs(folder: Path, n: int) -> Path:
    from quanta.audio.generate import write

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write(folder / f"long{i}.wav", "music", seconds=40, rate_hz=48000, channels=2, seed=i)
    return folder


def _wait_for_temporary(p: subprocess.Popen, folder: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and p.poll() is None:
        if _leftovers(folder):
            return
        time.sleep(0.02)
    raise AssertionError("no temporary output appeared")


def test_workers_die_with_their_killed_parent_and_clean_up(tmp_path):
    import psutil

    src = _long_wavs(tmp_path / "in", 4)
    out = tmp_path / "out"
    p = subprocess.Popen([*QUANTA, "audio", "requantize", str(src), "-o", str(out), "--chunk", "4096",
                          "-j", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_temporary(p, out)
    workers = psutil.Process(p.pid).children(recursive=True)
    assert workers
    p.kill()  # SIGKILL: the parent cannot clean anything up itself
    p.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"orphaned workers still running: {[w.pid for w in alive]}"
    assert not _leftovers(out)  # each worker removed its temporary output as it went


def test_sighup_cleans_up_like_sigterm(tmp_path):
    src = _long_wavs(tmp_path / "in", 1) / "long0.wav"
    dst = tmp_path / "out" / "hup.flac"
    dst.parent.mkdir()
    p = subprocess.Popen([*QUANTA, "audio", "requantize", str(src), str(dst), "--chunk", "512"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_temporary(p, dst.parent)
    p.send_signal(signal.SIGHUP)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 129 and "hung up" in err
    assert not _leftovers(dst.parent) and not dst.exists()


# ----------------------------------------------------------------------------- clusters (H5, M7, L5)

def test_a_cluster_worker_in_another_folder_reads_and_writes_the_clients_paths(tmp_path, monkeypatch,
                                                                                 capsys):
    pytest.importorskip("dask.distributed", reason="quanta[cluster] is installed by make test")
    from dask.distributed import LocalCluster

    monkeypatch.chdir(tmp_path)
    _wav(tmp_path / "sig" / "s1.wav", seed=1)
    elsewhere = tmp_path / "elsewhere"
    _wav(elsewhere / "sig" / "s1.wav", seed=5)  # a decoy under the same relative name
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers",
                                   "1", "--nthreads", "1", "--no-dashboard"], cwd=elsewhere,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            from dask.distributed import Client

            with Client(address) as c:
                while not c.scheduler_info()["workers"] and time.monotonic() < deadline:
                    time.sleep(0.1)
            assert main(["audio", "requantize", "sig/s1.wav", "-o", "remo", "--bits", "8", "--format", "flac",
                         "--cluster", address, "--json"]) == 0
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert json.loads(capsys.readouterr().out)["files"][0]["dst"] == "remo/s1.flac"
    assert (tmp_path / "remo" / "s1.flac").exists() and not (elsewhere / "remo").exists()
    ref = tmp_path / "ref.flac"
    assert main(["audio", "requantize", "sig/s1.wav", str(ref), "--bits", "8"]) == 0
    assert ref.read_bytes() == (tmp_path / "remo" / "s1.flac").read_bytes()


@pytest.mark.parametrize("address", ["nonsense", "LOCAL", "", "tcp://256.1.1.1:99999", "tcp://127.0.0.1:1"])
def test_a_bad_or_unreachable_cluster_is_exit_2_within_seconds(address, tmp_path, capsys):
    pytest.importorskip("dask.distributed", reason="quanta[cluster] is installed by make test")
    _wav(tmp_path / "in" / "a.wav")
    t0 = time.perf_counter()
    assert main(["audio", "requantize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--cluster",
                 address]) == 2
    assert time.perf_counter() - t0 < 8
    err = capsys.readouterr().err
    assert "--cluster" in err and "internal error" not in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the environment (M7)

def test_a_240_byte_name_is_written(tmp_path):
    src = _wav(tmp_path / ("a" * 235 + ".wav"))
    dst = tmp_path / "out" / ("b" * 235 + ".flac")
    dst.parent.mkdir()
    assert main(["audio", "requantize", str(src), str(dst)]) == 0 and dst.exists()


def test_an_unwritable_output_folder_is_exit_2_with_one_line(tmp_path):
    src = _wav(tmp_path / "a.wav")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    caps = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search"]
    r = subprocess.run([*caps, *QUANTA, "audio", "requantize", str(src), str(ro / "x.flac")],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"quanta: error: {ro / 'x.flac'}: permission denied"
    r = subprocess.run([*caps, *QUANTA, "audio", "requantize", str(src), "-o", str(ro / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == f"quanta: error: {ro / 'x'}: permission denied"


def test_an_unreadable_folder_fails_the_batch_as_rsync_would(tmp_path):
    _wav(tmp_path / "plib" / "ok" / "a.wav")
    _wav(tmp_path / "plib" / "locked" / "b.wav")
    (tmp_path / "plib" / "locked").chmod(0)
    caps = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search"]
    try:
        r = subprocess.run([*caps, *QUANTA, "audio", "requantize", str(tmp_path / "plib"), "-o",
                            str(tmp_path / "out"), "-R", "--json"], capture_output=True, text=True)
    finally:
        (tmp_path / "plib" / "locked").chmod(0o755)
    assert r.returncode == 2, r.stderr
    res = json.loads(r.stdout)
    assert res["totals"]["done"] == 1 and res["totals"]["failed"] == 1
    assert "cannot list the folder" in next(f["error"] for f in res["files"] if f["status"] == "failed")
