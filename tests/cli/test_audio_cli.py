import json

import numpy as np
import pytest
import soundfile as sf

from quanta.cli.main import main


@pytest.fixture
def src(tmp_path):
    p = tmp_path / "in.wav"
    assert main(["audio", "generate", str(p), "--seconds", "2", "--rate", "44100"]) == 0
    return p


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def test_requantize_json_report(tmp_path, src, capsys):
    capsys.readouterr()
    out = tmp_path / "out.flac"
    assert main(["audio", "requantize", str(src), str(out), "--bits", "16", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["bits"] == 16 and rep["shape"].startswith("designed") and rep["rate_hz"] == 44100
    assert rep["clipped"] == [0, 0] and not rep["exact_copy"]
    info = sf.info(out)
    assert info.subtype == "PCM_16" and info.samplerate == 44100 and info.frames == 88200


def test_requantize_adaptive_shaping(tmp_path, src, capsys):
    capsys.readouterr()
    out = tmp_path / "out.flac"
    assert main(["audio", "requantize", str(src), str(out), "--shape", "adaptive", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["shape"].startswith("adaptive") and rep["filter_order"] == 32
    assert rep["predicted_vs_unshaped_db"] is None and sf.info(out).frames == 88200
    assert main(["audio", "analyze", str(out), "-r", str(src), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["residual"]["nmr_median_db"] < -30
    assert main(["audio", "requantize", str(src), str(tmp_path / "x.flac"), "--shape", "adaptiv"]) == 2


def test_requantize_table(tmp_path, src, capsys):
    assert main(["audio", "requantize", str(src), str(tmp_path / "o.wav"), "--bits", "8",
                 "--shape", "lipshitz"]) == 0
    out = capsys.readouterr().out
    assert "lipshitz" in out and "clipped" in out
    assert sf.info(tmp_path / "o.wav").subtype == "PCM_U8"


def test_existing_output_needs_force(tmp_path, src, capsys):
    out = tmp_path / "o.wav"
    out.write_bytes(b"keep me")
    assert main(["audio", "requantize", str(src), str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["audio", "requantize", str(src), str(out), "--force"]) == 0
    assert sf.info(out).frames == 88200


def test_output_equal_to_input_is_refused(src, capsys):
    before = src.read_bytes()
    assert main(["audio", "requantize", str(src), str(src), "--force"]) == 2
    assert "same as the input" in capsys.readouterr().err
    assert src.read_bytes() == before


@pytest.mark.parametrize("args,msg", [
    (["--bits", "0"], "1..24"), (["--bits", "25"], "1..24"), (["--dither", "pink"], "dither"),
    (["--shape", "magic"], "unknown noise-shaping filter"),
])
def test_bad_options_exit_2_without_output(tmp_path, src, capsys, args, msg):
    out = tmp_path / "o.wav"
    assert main(["audio", "requantize", str(src), str(out), *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not _leftovers(tmp_path)


def test_corrupt_and_nan_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    out = tmp_path / "o.wav"
    assert main(["audio", "requantize", str(bad), str(out)]) == 2
    nan = tmp_path / "nan.wav"
    x = np.zeros(300_000)
    x[250_000] = np.nan  # far into the file: after the first chunk was written
    sf.write(nan, x, 48000, subtype="FLOAT")
    assert main(["audio", "requantize", str(nan), str(out), "--force-dither"]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert not out.exists() and not _leftovers(tmp_path)
    assert main(["audio", "requantize", str(tmp_path / "none.wav"), str(out)]) == 2


def test_debug_shows_traceback_and_keeps_the_exit_code(tmp_path, capsys):
    # an input error stays exit 2 under --debug (probe 2026-12-05, L11); the traceback is added
    assert main(["--debug", "audio", "requantize", str(tmp_path / "none.wav"), str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "InputError" in err and err.strip().endswith("no such file")


def test_analyze_with_reference_and_plot(tmp_path, src, capsys):
    out = tmp_path / "o.wav"
    assert main(["audio", "requantize", str(src), str(out)]) == 0
    capsys.readouterr()
    png = tmp_path / "spec.png"
    assert main(["audio", "analyze", str(out), "-r", str(src), "--plot", str(png), "--bits", "16",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["residual"]["threshold_db"] < -100
    # at the file's 44.1 kHz: TPDF theory 93.75 dB over 20 Hz–20 kHz
    assert rep["dynamic_range"]["dynamic_range_db"] == pytest.approx(93.75, abs=0.3)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["audio", "analyze", str(out), "--plot", str(tmp_path / "x.png")]) == 2
    # the noise-to-mask ratio against the reference's masking threshold, and its plot over time
    assert rep["residual"]["nmr_median_db"] < -10 and 0 <= rep["residual"]["nmr_frames_above_0db"] <= 1
    nmr_png = tmp_path / "nmr.png"
    assert main(["audio", "analyze", str(out), "-r", str(src), "--nmr-plot", str(nmr_png)]) == 0
    assert nmr_png.read_bytes()[:4] == b"\x89PNG" and "noise-to-mask ratio" in capsys.readouterr().out
    assert main(["audio", "analyze", str(out), "--nmr-plot", str(tmp_path / "y.png")]) == 2
    assert main(["audio", "analyze", str(out), "-r", str(src), "--plot", str(png), "--nmr-plot", str(png),
                 "--force"]) == 2 and not (tmp_path / "y.png").exists()


def test_filters_listing(capsys):
    assert main(["audio", "filters", "--rate", "48000", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert names[0].startswith("designed") and "shibata" in names and "gesemann" in names
