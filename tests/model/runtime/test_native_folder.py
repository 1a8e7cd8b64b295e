"""quanta folders on the compiled kernels (issue 28): every grid a folder stores repacked into
blocks that give its weights to the bit, products within the activations' rounding bound on
every build, whole models against their weights-only reference (each layer's weight dequantized
exactly, float32 activations), the CLI on the native path, what it does not run named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from quanta.cli.main import main
from quanta.core.packing import pack
from quanta.errors import InputError
from quanta.model.formats.folder import load_quantized
from quanta.model.formats.weight import default_zero
from quanta.model.quantize.quantizers import QuantizedWeight
from quanta.model.runtime import _native
from quanta.model.runtime.native import Unsupported
from quanta.model.runtime.native_folder import open_folder
from quanta.model.sources.load import load_model
from quanta.model.sources.tiny import write_hf_folder
from tests.model.runtime.test_native import _kld, builds, rounded

#: (bits, symmetric, group — 0: one per row —, true inputs, stored width)
GRIDS = [
    (4, False, 64, 96, 128),  # the default's 4-bit groups, padded past the true width
    (4, False, 32, 96, 96),
    (4, True, 128, 256, 256),
    (3, False, 32, 64, 64),
    (2, True, 32, 64, 64),
    (5, True, 0, 96, 96),  # the default's 5–8-bit rows
    (8, True, 0, 64, 64),
    (6, False, 32, 64, 64),
    (5, True, 32, 96, 96),  # the default's symmetric 5-bit groups: Q5_0
    (6, True, 32, 64, 64),
    (8, False, 64, 128, 128),
]


@pytest.mark.parametrize(("bits", "sym", "group", "cols", "width"), GRIDS)
def test_every_folder_grid_repacks_to_the_bit_and_multiplies_within_the_bound(bits, sym, group, cols, width):
    rng = np.random.default_rng(bits * 100 + group)
    rows = 37
    groups = 1 if group == 0 else width // group
    codes = rng.integers(0, 1 << bits, (rows, width)).astype(np.uint8)
    scales = rng.uniform(0.001, 0.05, (rows, groups)).astype(np.float16)
    zeros = None if sym else rng.uniform(0, (1 << bits) - 1, (rows, groups)).astype(np.float16)
    z = torch.full((rows, groups), float(default_zero(bits))) if sym else torch.from_numpy(zeros).float()
    qw = QuantizedWeight(torch.from_numpy(codes.astype(np.int64)), torch.from_numpy(scales).float(), z, bits,
                         width if group == 0 else group, "rtn", cols, None, sym)
    truth = qw.dequantize().numpy()  # the folder's weight: scale · (code − zero), float32
    kind, blocks = _native.grid_blocks(pack(codes, bits), bits, rows, width, cols, scales.view(np.uint16),
                                       None if sym else zeros.view(np.uint16), group, default_zero(bits))
    if sym:  # Q4_0 up to 4 bits, Q5_0 for 5-bit groups, Q8_0 wider and for rows
        assert kind == (2 if bits <= 4 else 6 if bits == 5 and group else 8)
    x = rng.standard_normal((7, cols)).astype(np.float32)
    xr, step = rounded(x, 16 if _native.wide_activations(kind) else 8)
    w = truth.astype(np.float64)
    exact = xr.astype(np.float64) @ w.T
    scale = np.abs(xr).astype(np.float64) @ np.abs(w).T
    bound = (np.abs(w) @ (step.astype(np.float64) / 2).T).T  # Σ|w|·d/2: the rounding of x
    for mod in builds():
        np.testing.assert_array_equal(mod.dequantize(kind, blocks, cols), truth)
        for T in (1, 7):
            y = mod.matmul(kind, blocks, cols, x[:T]).astype(np.float64)
            assert np.all(np.abs(y - exact[:T]) <= 1e-5 * scale[:T] + 1e-6), (mod.__name__, T)
            float_product = x[:T].astype(np.float64) @ w.T
            assert np.all(np.abs(y - float_product) <= bound[:T] + 1e-5 * scale[:T] + 1e-6), (mod.__name__, T)


def test_iq4_nl_levels_in_groups_of_32_repack_to_iq4_nl_blocks_to_the_bit():
    """A folder's codebook grid (weight = scale · IQ4_NL[code], signed float16 scales) is IQ4_NL's
    block exactly: the same weights from every build, products within the activations' bound."""
    from quanta.core.codebook import IQ4_NL

    rng = np.random.default_rng(41)
    rows, cols = 37, 128
    codes = rng.integers(0, 16, (rows, cols)).astype(np.uint8)
    scales = (rng.uniform(0.0005, 0.002, (rows, cols // 32)) * rng.choice([-1, 1], (rows, cols // 32))
              ).astype(np.float16)
    qw = QuantizedWeight(torch.from_numpy(codes.astype(np.int64)), torch.from_numpy(scales).float(), None, 4,
                         32, "gptq", cols, IQ4_NL.copy(), True)
    truth = qw.dequantize().numpy()
    kind, blocks = _native.grid_blocks(pack(codes, 4), 4, rows, cols, cols, scales.view(np.uint16), None,
                                       32, 0, True)
    assert kind == 20  # GGML's IQ4_NL
    x = rng.standard_normal((3, cols)).astype(np.float32)
    xr, _ = rounded(x, 8)
    w = truth.astype(np.float64)
    scale = np.abs(xr).astype(np.float64) @ np.abs(w).T
    for mod in builds():
        np.testing.assert_array_equal(mod.dequantize(kind, blocks, cols), truth)
        y = mod.matmul(kind, blocks, cols, x).astype(np.float64)
        assert np.all(np.abs(y - xr.astype(np.float64) @ w.T) <= 1e-5 * scale + 1e-6), mod.__name__
    # a layer 32 inputs wide has one group, which the folder's loader passes as group 0
    one = QuantizedWeight(qw.codes[:, :32], qw.scales[:, :1], None, 4, 32, "gptq", 32, IQ4_NL.copy(), True)
    kind, blocks = _native.grid_blocks(pack(codes[:, :32].copy(), 4), 4, rows, 32, 32,
                                       scales[:, :1].copy().view(np.uint16), None, 0, 0, True)
    assert kind == 20
    np.testing.assert_array_equal(_native.dequantize(kind, blocks, 32), one.dequantize().numpy())
    with pytest.raises(ValueError, match="groups of 32"):
        _native.grid_blocks(pack(codes, 4), 4, rows, cols, cols, scales[:, ::2].copy().view(np.uint16), None,
                            64, 0, True)


def test_the_formats_of_six_bits_and_more_take_16_bit_activations():
    """The criterion in blocks.h: 8-bit activations cost Q8_0 more than its own rounding."""
    q8_0, q6_k, q4_0, q4_k = 8, 14, 2, 12
    assert _native.wide_activations(q8_0) and _native.wide_activations(q6_k)
    assert not _native.wide_activations(q4_0) and not _native.wide_activations(q4_k)


def _quantize(src, out, *flags: str) -> None:
    assert main(["model", "quantize", str(src), "-o", str(out), *flags, "--json"]) == 0


@pytest.fixture(scope="module")
def default_folder(tmp_path_factory):
    """A tiny Llama quantized by the plain ``--bits 4`` (GPTQ, mixed: 4-bit groups and 5–8-bit rows)."""
    tmp = tmp_path_factory.mktemp("native-folder")
    out = tmp / "q"
    _quantize(write_hf_folder(tmp / "hf", seed=3), out, "--bits", "4")
    return out


def _weights_only(folder, ids):
    model = load_quantized(folder, dense=True)[0]
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "phi3"])
def test_each_familys_folder_runs_natively_against_its_weights_only_model(family, tmp_path, capsys):
    out = tmp_path / "q"
    _quantize(write_hf_folder(tmp_path / "hf", seed=7, family=family), out, "--bits", "4", "--method", "rtn")
    capsys.readouterr()
    ids = list(range(3, 60))
    got = open_folder(out, threads=2)(torch.tensor([ids])).logits[0].numpy()
    ref = _weights_only(out, ids)
    assert _kld(ref, got) < 1e-3, family
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.9


def test_the_default_folder_runs_natively_with_its_mixed_grids(default_folder):
    lm = open_folder(default_folder, threads=2)
    kinds = {t.tensor_type for t in lm.tensors.values()}
    assert 64 in kinds and 8 in kinds  # 4-bit groups as T_QG4, 5–8-bit rows as Q8_0
    ids = list(range(3, 60))
    got = lm(torch.tensor([ids])).logits[0].numpy()
    ref = _weights_only(default_folder, ids)
    assert _kld(ref, got) < 1e-3
    loaded = load_model(default_folder, native=True)
    assert loaded.info["native"] == "" and loaded.model.is_causal_lm
    assert load_model(default_folder).info["native"] == "not asked for"


def test_generate_and_eval_run_a_folder_natively(default_folder, capsys):
    assert main(["model", "generate", str(default_folder), "ab", "--max-tokens", "4", "--temperature", "0",
                 "--json"]) == 0
    gen = json.loads(capsys.readouterr().out)
    assert gen["generated_tokens"] == 4 and gen["path"].startswith("native kernels")
    assert main(["model", "generate", str(default_folder), "ab", "--max-tokens", "2", "--eager",
                 "--json"]) == 0
    assert "native" not in json.loads(capsys.readouterr().out)["path"]
    assert main(["model", "eval", str(default_folder), "--chunks", "1", "--ctx", "32", "--no-speed",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    cfg = json.loads((default_folder / "quant_config.json").read_text())
    assert rep["bits_per_weight"] == pytest.approx(cfg["weight_stats"]["bits_per_weight"])
    assert np.isfinite(rep["measures"]["perplexity"])


def test_what_the_kernels_do_not_run_in_a_folder_is_named_and_falls_back(tmp_path, capsys):
    out = tmp_path / "nf4"
    _quantize(write_hf_folder(tmp_path / "hf", seed=2), out, "--bits", "4", "--method", "nf4")
    capsys.readouterr()
    with pytest.raises(Unsupported, match="codebook"):
        open_folder(out)
    assert "codebook" in load_model(out, native=True).info["native"]
    assert main(["model", "generate", str(out), "ab", "--max-tokens", "2", "--verbose"]) == 0
    assert "compiled kernels not used: " in capsys.readouterr().err


def test_a_damaged_folder_is_refused_on_the_native_path_too(default_folder, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(default_folder, bad)
    raw = bytearray((bad / "model.safetensors").read_bytes())
    raw[-5] ^= 0x40
    (bad / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="checksum"):
        open_folder(bad)
    assert main(["model", "generate", str(bad), "ab", "--max-tokens", "2"]) == 2
    assert "checksum" in capsys.readouterr().err
    assert open_folder(bad, verify=False) is not None  # --no-verify reads it anyway


def test_a_folder_with_a_float_embedding_in_bfloat16_runs_natively(tmp_path, capsys):
    """``--embedding-bits 0`` keeps the embedding (and so the tied head) float; ``--float-dtype
    bfloat16`` stores it and the norms in bfloat16, which the native path widens to float32."""
    out = tmp_path / "q"
    _quantize(write_hf_folder(tmp_path / "hf", seed=4), out, "--bits", "4", "--method", "rtn",
              "--embedding-bits", "0", "--float-dtype", "bfloat16")
    capsys.readouterr()
    lm = open_folder(out, threads=2)
    assert lm.tensors["token_embd.weight"].tensor_type == 0  # float32 rows
    ids = list(range(3, 60))
    got = lm(torch.tensor([ids])).logits[0].numpy()
    model = load_quantized(out, dense=True)[0].float()
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    assert _kld(ref, got) < 1e-3


def test_a_llama3_rope_folder_runs_natively(tmp_path, capsys):
    """Llama 3's rotary scaling: the factors as llama.cpp applies them (gguf_rope), against
    transformers' own llama3 frequencies in the weights-only model."""
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}
    out = tmp_path / "q"
    _quantize(write_hf_folder(tmp_path / "hf", seed=6, rope_scaling=rope, max_position_embeddings=512), out,
              "--bits", "4", "--method", "rtn")
    capsys.readouterr()
    ids = list(range(3, 120))
    got = open_folder(out, threads=2)(torch.tensor([ids])).logits[0].numpy()
    assert _kld(_weights_only(out, ids), got) < 1e-3
