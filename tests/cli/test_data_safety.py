"""Issue 9: never destroy what the user did not ask to destroy, never run a stranger's code, say
honestly how a run ended, keep what users expect to keep."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from quanta.cli.main import main
from quanta.outputs import leftovers


def _strict(text: str):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=bad)


# ---------------------------------------------------------------- --force and model folders

def test_force_keeps_a_folder_of_user_files(tiny, tmp_path, capsys):
    _, path = tiny
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "thesis.txt").write_text("years of work")
    assert main(["model", "quantize", str(path), "-o", str(victim), "--group-size", "32", "--force"]) == 2
    assert "not a folder quanta wrote" in capsys.readouterr().err
    assert (victim / "thesis.txt").read_text() == "years of work" and (victim / "sub").is_dir()


def test_force_on_dot_deletes_nothing(tiny, tmp_path, capsys, monkeypatch):
    _, path = tiny
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("keep")
    for out in (".", "sub/..", str(tmp_path)):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert main(["model", "quantize", str(path), "-o", out, "--group-size", "32", "--force"]) == 2
        capsys.readouterr()
        assert (tmp_path / "keep.txt").read_text() == "keep"


def test_output_folder_holding_the_input_is_refused(tmp_path, capsys):
    from quanta.model.sources.tiny import write_hf_folder

    models = tmp_path / "models"
    src = write_hf_folder(models / "tiny")
    (models / "notes.txt").write_text("notes")
    assert main(["model", "quantize", str(src), "-o", str(models), "--force"]) == 2
    assert main(["model", "quantize", str(src), "-o", str(src), "--force"]) == 2
    capsys.readouterr()
    assert (models / "notes.txt").exists() and (src / "config.json").exists()


def test_force_replaces_a_quanta_folder(tiny, tmp_path, capsys):
    _, path = tiny
    out = tmp_path / "q"
    args = ["model", "quantize", str(path), "-o", str(out), "--group-size", "32", "--json"]
    assert main(args) == 0
    assert main([*args, "--force", "--bits", "8"]) == 0
    assert _strict(capsys.readouterr().out.split("\n}\n")[-1] or "{}") is not None
    layers = json.loads((out / "quant_config.json").read_text())["layers"]
    assert layers["model.layers.0.mlp.up_proj"]["bits"] == 8
    assert leftovers(tmp_path) == []


def test_include_matching_nothing_writes_nothing(tiny, tmp_path, capsys):
    _, path = tiny
    assert main(["model", "quantize", str(path), "-o", str(tmp_path / "zero"), "--include",
                 "model.layer.*"]) == 2
    assert "no Linear layer matches" in capsys.readouterr().err
    assert not (tmp_path / "zero").exists()


# ---------------------------------------------------------------- strangers' code and headers

def test_auto_map_folder_is_refused_and_its_code_never_runs(tmp_path, capsys, monkeypatch):
    from quanta.model.sources.tiny import write_hf_folder

    d = write_hf_folder(tmp_path / "evil")
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    (d / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "PWNED"
    (d / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    assert main(["model", "info", str(d), "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "never runs code" in out.err and not marker.exists()


def _hostile_gguf(path: Path, blocks: int) -> Path:
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_block_count(blocks)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_context_length(128)
    w.add_tensor("token_embd.weight", np.zeros((8, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_declaring_a_million_layers_is_refused_at_once(tmp_path, capsys):
    p = _hostile_gguf(tmp_path / "evil.gguf", 1_000_000)
    assert p.stat().st_size < 4096
    t0 = time.perf_counter()
    assert main(["model", "info", str(p)]) == 2
    assert time.perf_counter() - t0 < 1.0
    err = capsys.readouterr().err
    assert "implausible sizes" in err and err.count("\n") == 1
    p2 = _hostile_gguf(tmp_path / "evil2.gguf", 1000)  # plausible count, tensors missing
    assert main(["model", "info", str(p2)]) == 2
    assert "evil2.gguf: implausible sizes" in capsys.readouterr().err  # no vocabulary either


def test_hf_config_declaring_100000_layers_is_refused_at_once(tmp_path, capsys):
    from quanta.model.sources.tiny import write_hf_folder

    d = write_hf_folder(tmp_path / "big")
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_hidden_layers"] = 100_000
    (d / "config.json").write_text(json.dumps(cfg))
    t0 = time.perf_counter()
    assert main(["model", "info", str(d)]) == 2
    assert time.perf_counter() - t0 < 1.0
    assert "declares about" in capsys.readouterr().err


def test_quanta_folder_with_a_4tb_layer_spec_is_refused(tiny, tmp_path, capsys):
    _, path = tiny
    out = tmp_path / "q"
    assert main(["model", "quantize", str(path), "-o", str(out), "--group-size", "32", "--json"]) == 0
    capsys.readouterr()
    cfg = json.loads((out / "quant_config.json").read_text())
    cfg["layers"]["model.layers.0.mlp.up_proj"].update({"out": 10**12, "bias": True})
    (out / "quant_config.json").write_text(json.dumps(cfg))
    assert main(["model", "info", str(out)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err  # the checksum catches it first
    t0 = time.perf_counter()
    assert main(["model", "info", str(out), "--no-verify"]) == 2  # and the spec check behind it
    assert time.perf_counter() - t0 < 5.0
    err = capsys.readouterr().err  # refused by the spec check, before anything is allocated
    assert "do not fit" in err or "does not fit out 1000000000000" in err


def test_nan_weights_are_refused(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    from quanta.model.sources.tiny import write_hf_folder

    d = write_hf_folder(tmp_path / "nan")
    st = load_file(d / "model.safetensors")
    st["model.layers.1.mlp.up_proj.weight"][0, 0] = float("nan")
    st["model.layers.1.mlp.up_proj.weight"][0, 1] = float("inf")
    save_file({k: v.contiguous() for k, v in st.items()}, str(d / "model.safetensors"))
    assert torch.isnan(load_file(d / "model.safetensors")["model.layers.1.mlp.up_proj.weight"]).any()
    assert main(["model", "quantize", str(d), "-o", str(tmp_path / "q")]) == 2
    assert "model.layers.1.mlp.up_proj" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


# ---------------------------------------------------------------- garbage in, strict JSON out

def test_generate_refuses_a_nan_level(tmp_path, capsys):
    assert main(["audio", "generate", str(tmp_path / "g.wav"), "--level", "nan", "--seconds", "0.1"]) == 2
    assert "finite" in capsys.readouterr().err and not (tmp_path / "g.wav").exists()


def test_strict_json_on_silence_and_identical_inputs(tmp_path, capsys):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros((4800, 2)), 48000, subtype="PCM_24")
    assert main(["audio", "requantize", str(silence), str(tmp_path / "s16.wav"), "--json"]) == 0
    assert _strict(capsys.readouterr().out)["input_peak_dbfs"] is None
    assert main(["audio", "analyze", str(silence), "-r", str(silence), "--json"]) == 0
    rep = _strict(capsys.readouterr().out)
    assert rep["channels_stats"][0]["peak_dbfs"] is None
    img = tmp_path / "a.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(img)
    assert main(["image", "compare", str(img), str(img), "--no-ssimulacra2", "--json"]) == 0
    assert _strict(capsys.readouterr().out)["psnr_db"] is None


# ---------------------------------------------------------------- what users expect to keep

def test_jpeg_keeps_exif_orientation_and_dpi(tmp_path, capsys):
    src = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° CW to display
    exif[0x010F] = "TestCam"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(
        src, exif=exif.tobytes(), dpi=(300, 300))
    out = tmp_path / "out.jpg"
    assert main(["image", "encode", str(src), str(out), "--json"]) == 0
    capsys.readouterr()
    with Image.open(out) as im:
        assert im.getexif()[0x0112] == 6 and im.getexif()[0x010F] == "TestCam"
        assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)


def test_posterize_keeps_the_icc_profile(tmp_path, capsys):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "icc.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src, icc_profile=icc)
    assert main(["image", "posterize", str(src), str(tmp_path / "p.png"), "--bits", "2", "--json"]) == 0
    capsys.readouterr()
    with Image.open(tmp_path / "p.png") as im:
        assert im.info.get("icc_profile") == icc


def test_flac_requantize_keeps_every_tag_and_the_picture(tmp_path, capsys):
    import struct

    from quanta.audio.flac_meta import PICTURE, VORBIS_COMMENT, _header, read_blocks

    src = tmp_path / "tagged.flac"
    x = np.random.default_rng(1).normal(0, 0.1, (4410, 2))
    sf.write(src, x, 44100, subtype="PCM_24")
    tags = [b"ARTIST=One", b"ARTIST=Two", b"REPLAYGAIN_TRACK_GAIN=-3.2 dB", b"ISRC=USRC17607839",
            b"MUSICBRAINZ_TRACKID=abc"]
    comment = struct.pack("<I", 4) + b"test" + struct.pack("<I", len(tags)) + b"".join(
        struct.pack("<I", len(t)) + t for t in tags)
    picture = struct.pack(">II", 3, 9) + b"image/png" + struct.pack(">I", 0) + struct.pack(
        ">IIIII", 1, 1, 24, 0, 4) + b"\x89PNG"
    blocks, at = read_blocks(src)
    audio = src.read_bytes()[at:]
    keep = [b for b in blocks if b[0] not in (VORBIS_COMMENT, PICTURE)]
    src.write_bytes(_header([keep[0], (VORBIS_COMMENT, comment), (PICTURE, picture), *keep[1:]]) + audio)
    out = tmp_path / "out.flac"
    assert main(["audio", "requantize", str(src), str(out), "--bits", "16", "--json"]) == 0
    capsys.readouterr()
    got = dict((k, v) for k, v in read_blocks(out)[0] if k in (VORBIS_COMMENT, PICTURE))
    assert got[VORBIS_COMMENT] == comment and got[PICTURE] == picture
    assert sf.read(out)[0].shape == x.shape


def test_output_name_must_match_the_format(tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    assert main(["image", "encode", str(src), str(tmp_path / "out.png")]) == 2
    assert main(["image", "curve", str(src), "--plot", str(tmp_path / "rd.jpg")]) == 2
    capsys.readouterr()
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "rd.jpg").exists()


def test_outputs_follow_the_umask(tmp_path, capsys):
    import os

    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    old = os.umask(0o022)
    try:
        assert main(["image", "encode", str(src), str(tmp_path / "o.jpg")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    assert (tmp_path / "o.jpg").stat().st_mode & 0o777 == 0o644


def test_dash_reads_stdin_and_writes_stdout(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)).save(src)
    r = subprocess.run([sys.executable, "-m", "quanta.cli", "image", "encode", "-", "-"],
                       input=src.read_bytes(), capture_output=True, check=True)
    assert r.stdout[:2] == b"\xff\xd8" and r.stdout[-2:] == b"\xff\xd9"
    assert not (tmp_path / "-").exists()

