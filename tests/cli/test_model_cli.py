import json

import pytest
import torch

from quanta.cli.main import main


@pytest.fixture()
def q4(tiny, tmp_path, capsys):
    _, path = tiny
    out = tmp_path / "q4"
    assert main(["model", "quantize", str(path), "-o", str(out), "--bits", "4", "--group-size", "32",
                 "--method", "rtn", "--json"]) == 0
    return path, out, json.loads(capsys.readouterr().out)


def test_quantize_reports_layers_and_paths(q4):
    _, _, rep = q4
    assert rep["layers"] == 14 and rep["paths"] == {"int4pack": 14}
    assert rep["wall_s"] > 0 and rep["peak_rss_mb"] > 0


def test_quantize_refuses_an_existing_output(q4, capsys):
    path, out, _ = q4
    assert main(["model", "quantize", str(path), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_eval_against_reference(q4, capsys):
    path, out, _ = q4
    assert main(["model", "eval", str(out), "--reference", str(path), "--chunks", "2", "--ctx", "64",
                 "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    m = ev["measures"]
    assert m["kld"] >= 0 and 0 <= m["top1_agreement"] <= 1 and m["tokens_scored"] == 2 * 31
    assert m["decode_tokens_per_s"] > 0 and ev["peak_rss_mb"] > 0
    assert "first 2 windows of 64 tokens" in m["protocol"]


def test_info_lists_quantized_layers(q4, capsys):
    _, out, _ = q4
    assert main(["model", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quantized_layers"] == {"int4pack": 14}


def test_float_dtype_bfloat16_stores_smaller(q4, tmp_path, capsys):
    path, out, _ = q4
    bf = tmp_path / "q4bf"
    assert main(["model", "quantize", str(path), "-o", str(bf), "--group-size", "32", "--method", "rtn",
                 "--embedding-bits", "0", "--float-dtype", "bfloat16", "--json"]) == 0
    capsys.readouterr()
    from quanta.model.formats.folder import load_quantized

    m_bf, _, _ = load_quantized(bf)
    assert m_bf.model.embed_tokens.weight.dtype == torch.bfloat16  # kept float: --embedding-bits 0
    assert m_bf.model.norm.weight.dtype == torch.bfloat16
    assert m_bf.model.layers[0].mlp.down_proj.scales_zeros.dtype == torch.bfloat16
    fl = tmp_path / "q4fl"
    assert main(["model", "quantize", str(path), "-o", str(fl), "--group-size", "32", "--method", "rtn",
                 "--embedding-bits", "0", "--json"]) == 0
    assert (bf / "model.safetensors").stat().st_size < (fl / "model.safetensors").stat().st_size
    # the default quantizes the token embedding: smaller still
    assert (out / "model.safetensors").stat().st_size < (bf / "model.safetensors").stat().st_size


def test_bad_group_size_names_the_layer_and_writes_nothing(tiny, tmp_path, capsys):
    _, path = tiny
    assert main(["model", "quantize", str(path), "-o", str(tmp_path / "bad"), "--group-size", "256"]) == 2
    err = capsys.readouterr().err
    assert "group size 256 does not fit" in err and "layer model.layers.0" in err
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_missing_model_is_one_line(tmp_path, capsys):
    assert main(["model", "eval", str(tmp_path / "missing.gguf")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_methods_lists_the_registry(capsys):
    from quanta.model.quantize.quantizers import QUANTIZERS

    assert main(["model", "methods", "--json"]) == 0
    assert [r["method"] for r in json.loads(capsys.readouterr().out)] == list(QUANTIZERS)


def test_encoder_quantization_keeps_embeddings_close(capsys):
    """all-MiniLM-L6-v2 (fp32 safetensors from its PyPI package) through the same command."""
    from quanta.cli.main import main

    assert main(["model", "eval", "minilm", "--bits", "8", "--group-size", "0", "--sym",
                 "--json"]) == 0
    r8 = json.loads(capsys.readouterr().out)
    assert r8["kind"] == "hf-encoder" and r8["measures"]["sentences"] == 64
    assert r8["measures"]["cosine_similarity_mean"] > 0.995
    assert main(["model", "eval", "minilm", "--bits", "4", "--group-size", "128", "--json"]) == 0
    r4 = json.loads(capsys.readouterr().out)
    assert 0.8 < r4["measures"]["cosine_similarity_mean"] < r8["measures"]["cosine_similarity_mean"]


def test_target_size_prints_the_map_and_draws_it(tiny, tmp_path, capsys):
    _, path = tiny
    out, png = tmp_path / "m.gguf", tmp_path / "map.png"
    assert main(["model", "quantize", str(path), "-o", str(out), "--format", "gguf", "--target-bpw", "5",
                 "--calib-samples", "8", "--calib-len", "32", "--plot", str(png), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert sum(rep["mixed"]["summary"].values()) == 15  # 14 layers and the token embedding
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["model", "quantize", str(path), "-o", str(out), "--format", "gguf", "--target-bpw", "5",
                 "--calib-samples", "8", "--calib-len", "32", "--plot", str(png)]) == 2
    assert "exists" in capsys.readouterr().err  # the plot is not replaced without --force


@pytest.mark.parametrize("args,message", [
    (["--plot", "x.png"], "--target-size or --target-bpw"),
    (["--target-size", "5 parsecs"], "size"),
    (["--target-size", "1kB"], "alone take about"),  # refused by the plan, before the load
    (["--target-size", "1MB", "--target-bpw", "4"], "not both"),
    (["--target-bpw", "4", "--plot", "x.jpg"], "PNG"),
])
def test_bad_targets_exit_2_and_write_nothing(tiny, tmp_path, capsys, monkeypatch, args, message):
    _, path = tiny
    monkeypatch.chdir(tmp_path)
    code = main(["model", "quantize", str(path), "-o", "out", "--calib-samples", "4", "--calib-len", "16",
                 *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
