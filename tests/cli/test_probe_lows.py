"""The probe's low findings (2026-12-05), each replayed: messages, defaults and small refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quanta.cli.main import main


def _png(path: Path, size=(64, 96)) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("skip,message", [("audio,image,model", "no medium"), ("bogus", "no such medium")])
def test_tour_refuses_a_skip_that_leaves_nothing_or_names_nothing(skip, message, tmp_path, capsys):
    assert main(["tour", "--quick", "--skip", skip, "--out", str(tmp_path / "t")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_tour_takes_skip_in_any_case_with_spaces_and_refuses_an_html_name(tmp_path, capsys):
    assert main(["tour", "--skip", "AUDIO, Image ,model", "--out", str(tmp_path / "t")]) == 2
    assert "no medium" in capsys.readouterr().err  # understood: all three skipped
    assert main(["tour", "--skip", "model", "--output", str(tmp_path / "t3.html")]) == 2
    assert "writes a folder" in capsys.readouterr().err


def test_demo_refuses_an_unknown_section(capsys, tmp_path):
    assert main(["demo", "--skip", "bogus", "--out", str(tmp_path / "t")]) == 2
    assert "no such medium" in capsys.readouterr().err


def test_two_inputs_without_o_get_a_hint_instead_of_an_overwrite(tmp_path, capsys):
    from quanta.audio.generate import write

    a, b = tmp_path / "s1.wav", tmp_path / "s2.wav"
    for p in (a, b):
        write(p, "music", seconds=0.2, rate_hz=44100, channels=1)
    before = b.read_bytes()
    assert main(["audio", "requantize", str(a), str(b)]) == 2
    assert "-o OUTDIR" in capsys.readouterr().err and b.read_bytes() == before


def test_jpeg_targets_read_as_people_write_them_and_q_is_said_to_be_ignored(tmp_path, capsys):
    src = _png(tmp_path / "k.png")
    assert main(["image", "encode", str(src), str(tmp_path / "a.jpg"), "--target-size", "1.5MB",
                 "-q", "50", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert any("-q 50 ignored" in n for n in rep["notes"])
    assert main(["image", "encode", str(src), str(tmp_path / "b.jpg"), "--target-size", "1.5MB"]) == 0
    out = capsys.readouterr().out
    assert "1,500,000 bytes" in out and "e+06" not in out
    assert main(["image", "encode", str(src), str(tmp_path / "c.jpg"), "--target-ssimulacra2", "0"]) == 0


def test_model_folder_files_all_take_the_umask(tiny, tmp_path):
    _, path = tiny
    out = tmp_path / "q"
    old = os.umask(0o022)
    try:
        assert main(["model", "quantize", str(path), "-o", str(out), "--method", "rtn"]) == 0
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {"0o644"}


def test_a_bad_quanta_threads_is_said_not_ignored(monkeypatch, capsys):
    from quanta import threads

    monkeypatch.setenv("QUANTA_THREADS", "abc")
    assert threads.threads() == threads.cpus()
    assert "QUANTA_THREADS='abc' ignored" in capsys.readouterr().err


def test_tour_force_refuses_a_tour_folder_holding_a_users_files(tmp_path, capsys):
    out = tmp_path / "quanta-tour"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"quanta_tour": True}))
    (out / "index.html").write_text("<html></html>")
    (out / "my-notes.txt").write_text("mine")
    assert main(["tour", "--quick", "--skip", "model,image", "--out", str(out), "--force"]) == 2
    assert "my-notes.txt" in capsys.readouterr().err and (out / "my-notes.txt").read_text() == "mine"
