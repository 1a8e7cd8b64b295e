"""Model files that were damaged or tampered with (issue 23; probe 2026-12-05 M7, M12, M13, M15):
checksums verified on load, non-finite results refused, bounded JSON reads, a GGUF's stored
bits per weight."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quanta.cli.main import main
from quanta.errors import InputError
from quanta.model.options import Options
from quanta.model.sources.load import load_model


@pytest.fixture(scope="module")
def written(tiny, tmp_path_factory):
    """The tiny GGUF quantized by quanta (RTN 4-bit) as a folder and as a GGUF file."""
    from quanta.media import get

    _, path = tiny
    d = tmp_path_factory.mktemp("written")
    get("model").write(path, d / "tqd", Options(method="rtn"))
    get("model").write(path, d / "tq.gguf", Options(method="rtn", format="gguf"))
    return d / "tqd", d / "tq.gguf"


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return dst


def _flip(path: Path, offset_from_end: int) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x40
    path.write_bytes(bytes(data))


def test_untouched_files_verify(written):
    folder, gguf = written
    assert load_model(folder).kind == "quanta" and load_model(gguf).kind == "gguf"


def test_a_folder_written_before_checksums_still_loads(written, tmp_path):
    folder = _copy(written[0], tmp_path / "old")
    cfg = json.loads((folder / "quant_config.json").read_text())
    del cfg["sha256"]
    (folder / "quant_config.json").write_text(json.dumps(cfg))
    assert load_model(folder).kind == "quanta"


def test_one_flipped_bit_in_a_folder_is_refused_and_no_verify_loads_it(written, tmp_path, capsys):
    folder = _copy(written[0], tmp_path / "f")
    _flip(folder / "model.safetensors", 1000)
    with pytest.raises(InputError, match="checksum mismatch"):
        load_model(folder)
    assert load_model(folder, verify=False).kind == "quanta"
    assert main(["model", "eval", str(folder), "--chunks", "1", "--ctx", "32", "--no-speed"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


def test_a_changed_group_size_or_bit_width_is_refused(written, tmp_path):
    for key, value in (("group_size", 64), ("bits", 3)):
        folder = _copy(written[0], tmp_path / key)
        cfg = json.loads((folder / "quant_config.json").read_text())
        for spec in cfg["layers"].values():
            spec[key] = value
        (folder / "quant_config.json").write_text(json.dumps(cfg))
        with pytest.raises(InputError, match="checksum mismatch"):
            load_model(folder)


def test_a_changed_group_size_is_refused_even_without_the_checksum(written, tmp_path):
    folder = _copy(written[0], tmp_path / "g")
    cfg = json.loads((folder / "quant_config.json").read_text())
    for spec in cfg["layers"].values():
        spec["group_size"] = spec["group_size"] // 2
    (folder / "quant_config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="do not fit the spec"):
        load_model(folder, verify=False)


def test_an_encoder_or_another_vocabulary_is_no_reference():
    from types import SimpleNamespace

    from quanta.cli.model import _reference

    ours = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(vocab_size=259)))
    encoder = SimpleNamespace(kind="hf-encoder", source="minilm", model=SimpleNamespace())
    with pytest.raises(InputError, match="encoder"):
        _reference(encoder, ours)
    other = SimpleNamespace(kind="gguf", source="big", model=SimpleNamespace(
        lm_head=None, config=SimpleNamespace(vocab_size=49152)))
    with pytest.raises(InputError, match="vocabulary"):
        _reference(other, ours)


def test_a_damaged_gguf_that_quanta_wrote_is_refused(written, tmp_path):
    gguf = _copy(written[1], tmp_path / "d.gguf")
    _flip(gguf, 2000)
    for native in (False, True):  # the PyTorch model and the mapped file of the compiled kernels
        with pytest.raises(InputError, match="checksum mismatch"):
            load_model(gguf, native=native)
        loaded = load_model(gguf, verify=False, native=native)
        assert (loaded.info["native"] == "") == native  # "": the kernels run it


def test_a_non_finite_evaluation_is_an_error_not_null(written, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    folder = _copy(written[0], tmp_path / "nan")
    st = load_file(folder / "model.safetensors")
    key = next(k for k in st if k.endswith("norm.weight"))
    st[key] = torch.full_like(st[key], float("nan"))
    save_file(st, folder / "model.safetensors", metadata={"format": "quanta/1"})
    assert main(["model", "eval", str(folder), "--chunks", "1", "--ctx", "32", "--no-speed",
                 "--json", "--no-verify"]) == 2  # past the checksum, the NaN reaches the evaluation
    assert "not finite" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["tokenizer.json", "quant_config.json"])
def test_json_files_that_are_devices_or_huge_are_refused_before_reading(written, tmp_path, name):
    folder = _copy(written[0], tmp_path / "dev")
    (folder / name).unlink()
    os.symlink("/dev/zero", folder / name)
    with pytest.raises(InputError, match="not a regular file"):
        load_model(folder, verify=False)


@pytest.mark.parametrize("content,message", [(None, "no tokenizer.json"),
                                             ('{"version":"1.0","model":5}', "not a tokenizer")])
def test_a_missing_or_bad_tokenizer_is_exit_2(written, tmp_path, content, message, capsys):
    folder = _copy(written[0], tmp_path / "tok")
    (folder / "tokenizer.json").unlink()
    if content is not None:
        (folder / "tokenizer.json").write_text(content)
    assert main(["model", "info", str(folder)]) == 2
    assert message in capsys.readouterr().err


def test_info_and_eval_give_a_gguf_its_bits_per_weight_as_stored(written, capsys):
    _, gguf = written
    assert main(["model", "info", str(gguf), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert 4.5 < rep["bits_per_weight"] < 8 and rep["quantized_params"] > 0  # was 32 and 0
    assert rep["bits_per_weight"] == pytest.approx(8 * rep["weight_bytes"] / rep["params"])
