"""Model commands under hostile input (issue 23; probe 2026-12-05: H6, M1, M7, M14, M16, M17,
L9, L18): every option refused before the model is read, generation bounded by the context,
references checked, and --force that never deletes a user's files."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from quanta.cli.main import main
from quanta.outputs import leftovers

QUANTA = [sys.executable, "-m", "quanta.cli"]


@pytest.mark.parametrize("bad", [["--target-size", "95XB"], ["--target-size", "0"], ["--target-bpw", "nan"],
                                 ["--target-bpw", "1e12"], ["--target-size", "1MB", "--target-bpw", "4"],
                                 ["--embedding-bits", "9"], ["--calib", "nonexist.txt"],
                                 ["--calib-samples", "0"], ["--calib-len", "0"], ["--bits", "9"],
                                 ["--bits", "3"], ["--method", "foo"]])
def test_a_bad_quantize_option_fails_at_once_before_the_model_is_read(bad, tmp_path):
    # smollm2 takes > 10 s to load: an answer within 2 s shows nothing was loaded
    t0 = time.perf_counter()
    r = subprocess.run([*QUANTA, "model", "quantize", "smollm2", "-o", str(tmp_path / "x.gguf"), "--format",
                        "gguf", *bad], capture_output=True, text=True, cwd=tmp_path)
    assert time.perf_counter() - t0 < 2.0
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_gguf_name_without_format_gguf_is_refused(tiny, tmp_path, capsys):
    _, path = tiny
    assert main(["model", "quantize", str(path), "-o", str(tmp_path / "y10.gguf"), "--method", "rtn"]) == 2
    assert "--format gguf" in capsys.readouterr().err and not (tmp_path / "y10.gguf").exists()


def test_calibration_windows_longer_than_the_context_are_refused(tiny, tmp_path, capsys):
    _, path = tiny
    assert main(["model", "quantize", str(path), "-o", str(tmp_path / "q"), "--calib-len", "2048",
                 "--calib-samples", "4"]) == 2
    assert "context of 256" in capsys.readouterr().err and leftovers(tmp_path) == []


def test_generation_stops_at_the_models_context(tiny, capsys):
    _, path = tiny
    assert main(["model", "generate", str(path), "hi", "--max-tokens", "1000000", "--temperature", "0",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["prompt_tokens"] + rep["generated_tokens"] <= 256 and rep["stopped"] in ("context", "eos")
    assert main(["model", "generate", str(path), "hi", "--max-tokens", "99999999999999999999", "--json"]) == 0


@pytest.mark.parametrize("args,message", [(["x" * 3000], "context holds 256"), ([""], "prompt is empty"),
                                          (["hi", "--temperature", "inf"], "--temperature")])
def test_generate_refuses_prompts_and_settings_it_cannot_honour(tiny, args, message, capsys):
    _, path = tiny
    assert main(["model", "generate", str(path), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--chunks", "0"], ["--ctx", "3"], ["--reference", "nonexist"]])
def test_bad_eval_options_fail_before_loading(bad, tmp_path):
    t0 = time.perf_counter()
    r = subprocess.run([*QUANTA, "model", "eval", "smollm2", *bad], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 2 and time.perf_counter() - t0 < 5.0, r.stderr


def test_a_reference_with_another_vocabulary_is_exit_2(tiny, tmp_path, capsys):
    from quanta.model.sources.tiny import write_hf_folder

    _, path = tiny
    other = write_hf_folder(tmp_path / "v300", hidden=64, vocab=300)
    assert main(["model", "eval", str(path), "--reference", str(other), "--chunks", "1", "--ctx", "32",
                 "--no-speed"]) == 2
    err = capsys.readouterr().err
    assert "vocabulary" in err and "internal error" not in err


def test_force_refuses_a_quanta_folder_holding_a_users_files(tiny, tmp_path, capsys):
    _, path = tiny
    out = tmp_path / "tqd2"
    assert main(["model", "quantize", str(path), "-o", str(out), "--method", "rtn"]) == 0
    (out / "NOTES.md").write_text("mine")
    (out / "runs").mkdir()
    (out / "runs" / "log.txt").write_text("mine too")
    assert main(["model", "quantize", str(path), "-o", str(out), "--method", "rtn", "--bits", "8",
                 "--force"]) == 2
    assert "did not write (NOTES.md, runs)" in capsys.readouterr().err
    assert (out / "NOTES.md").read_text() == "mine" and (out / "runs" / "log.txt").exists()
