"""The compiled decode kernels (issue 28): every GGML type's blocks read exactly as the gguf
package's dequantizer reads them; products against activations rounded to 8 bits per 32 values
(16 bits for the formats of 6 bits and more) within the bound that rounding sets; a whole model
run from its GGUF map against the PyTorch model of the same file; every build the processor runs;
the thread count changes no bit."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from quanta.cli.main import main
from quanta.core.grid import Grid, choose_qparams, fake_quantize
from quanta.model.formats.gguf_read import load_gguf
from quanta.model.runtime import _dispatch, _native
from quanta.model.runtime.native import load_grid, open_native, why_not
from quanta.model.sources.tiny import BOS, tiny_llama, write_hf_folder
from tests.model.conftest import write_tiny_gguf

#: each type's float16 fields (byte offsets in a block): the rest of a block is any byte
FLOAT_FIELDS = {
    "Q4_0": [0],
    "Q4_1": [0, 2],
    "Q5_0": [0],
    "Q5_1": [0, 2],
    "Q8_0": [0],
    "IQ4_NL": [0],
    "Q2_K": [80, 82],
    "Q3_K": [108],
    "Q4_K": [0, 2],
    "Q5_K": [0, 2],
    "Q6_K": [208],
    "IQ4_XS": [0],
    "IQ2_XXS": [0],
    "IQ2_XS": [0],
    "IQ2_S": [0],
    "IQ3_XXS": [0],
    "IQ3_S": [0],
}

#: the lattice types, whose grids the kernels are given at run time (native.load_grid)
LATTICE = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S")


def builds() -> list:
    """Every build this processor runs."""
    level = _native.cpu_level()
    names = (
        ["_native"]
        + (["_native_avx2"] if level >= 1 else [])
        + (["_native_vnni"] if _native.cpu_has_avxvnni() else [])
        + (["_native_avx512"] if level == 3 else [])
    )
    import importlib

    mods = [importlib.import_module(f"quanta.model.runtime.{n}") for n in names]
    for mod in mods:
        for name in LATTICE:
            load_grid(mod, int(gguf.GGMLQuantizationType[name]))
    return mods


def random_blocks(name: str, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Random stored rows of ``name``: any bytes, the float16 scales finite and small."""
    builds()  # the lattice types' grids loaded
    rng = np.random.default_rng(seed)
    size, nbytes = _native.sizes(int(gguf.GGMLQuantizationType[name]))
    nb = cols // size
    raw = rng.integers(0, 256, (rows, nb, nbytes), dtype=np.uint8)
    for f in FLOAT_FIELDS[name]:
        raw[:, :, f : f + 2] = rng.uniform(-0.05, 0.05, (rows, nb, 1)).astype(np.float16).view(np.uint8)
    return raw.reshape(rows, nb * nbytes)


def rounded(x: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The activations as the kernels round them — quanta.core's symmetric ``bits``-bit grid in
    groups of 32 (step = max|x| / 127 at 8 bits, / 32767 at 16; nearest, ties to even) — and each
    value's step."""
    qp = choose_qparams(x, Grid(bits=bits, symmetric=True, granularity="group", group_size=32, axis=1))
    return fake_quantize(x, qp), np.repeat(np.asarray(qp.scale, np.float32), 32, axis=1)


CASES = [(name, 512) for name in sorted(FLOAT_FIELDS)] + [
    (name, 96) for name in ("Q4_0", "Q8_0", "IQ4_NL", "Q5_1")  # 3 chunks: past the pairs of AVX-512
]


@pytest.mark.parametrize(("name", "cols"), CASES)
def test_every_type_reads_as_ggufs_dequantizer_and_multiplies_within_the_rounding_bound(name, cols):
    kind = int(gguf.GGMLQuantizationType[name])
    rows = 37  # an odd row count: the two-row tiles' last row takes the one-row kernel
    raw = random_blocks(name, rows, cols)
    w = gguf.quants.dequantize(raw, kind).reshape(rows, cols).astype(np.float64)
    np.testing.assert_array_equal(_native.dequantize(kind, raw, cols), w.astype(np.float32))
    x = np.random.default_rng(1).standard_normal((7, cols)).astype(np.float32)  # 7: tiles of 4 + 3 left
    xr, step = rounded(x, 16 if _native.wide_activations(kind) else 8)
    exact = xr.astype(np.float64) @ w.T
    scale = np.abs(xr).astype(np.float64) @ np.abs(w).T  # what float32 sums of these terms can lose
    bound = (np.abs(w) @ (step.astype(np.float64) / 2).T).T  # Σ|w|·d/2: the rounding of x
    for mod in builds():
        for T in (1, 7):  # one token (the row kernel) and several (the tiled one)
            y = mod.matmul(kind, raw, cols, x[:T]).astype(np.float64)
            assert np.all(np.abs(y - exact[:T]) <= 1e-5 * scale[:T] + 1e-6), (mod.__name__, T)
            truth = x[:T].astype(np.float64) @ w.T
            assert np.all(np.abs(y - truth) <= bound[:T] + 1e-5 * scale[:T] + 1e-6), (mod.__name__, T)


@pytest.mark.parametrize(("name", "cols"), CASES)
def test_any_type_multiplies_16_bit_activations_when_asked(name, cols):
    """``wide=True`` (the output head's products): every format against the activations rounded
    to 16 bits — exact integer products, so only float32 summation separates the result from
    the rounded activations' product, on every build, one token and several."""
    kind = int(gguf.GGMLQuantizationType[name])
    rows = 37
    raw = random_blocks(name, rows, cols, seed=3)
    w = gguf.quants.dequantize(raw, kind).reshape(rows, cols).astype(np.float64)
    x = np.random.default_rng(4).standard_normal((7, cols)).astype(np.float32)
    xr = rounded(x, 16)[0].astype(np.float64)
    xr8 = rounded(x, 8)[0].astype(np.float64)
    exact, scale = xr @ w.T, np.abs(xr) @ np.abs(w).T
    for mod in builds():
        for T in (1, 7):
            y = mod.matmul(kind, raw, cols, x[:T], wide=True).astype(np.float64)
            err = np.abs(y - exact[:T])
            assert np.all(err <= 1e-5 * scale[:T] + 1e-6), (mod.__name__, T)
            # and it is the 16-bit product, not the 8-bit one: nearer the 16-bit truth by far
            assert err.max() < 0.1 * np.abs(xr8[:T] @ w.T - exact[:T]).max(), (mod.__name__, T)


@pytest.mark.parametrize("name", ["Q4_K", "Q6_K", "Q2_K", "IQ4_XS", "Q8_0"])
def test_products_give_the_same_bits_on_any_thread_count(name):
    """A row's sum is computed whole by one thread, in a fixed order (the super-block kernels
    included): one thread or two, the same bits — and ``threads`` reports the count it set."""
    kind = int(gguf.GGMLQuantizationType[name])
    raw = random_blocks(name, 203, 1024, seed=5)  # 203 rows: runs of 16 split unevenly
    x = np.random.default_rng(6).standard_normal((2, 1024)).astype(np.float32)
    for mod in builds():
        try:
            assert mod.threads(1) == 1
            one = mod.matmul(kind, raw, 1024, x)
            assert mod.threads(2) == 2
            np.testing.assert_array_equal(mod.matmul(kind, raw, 1024, x), one)
        finally:
            mod.threads(1)


def test_float_rows_multiply_in_float():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((19, 96)).astype(np.float32)
    x = rng.standard_normal((3, 96)).astype(np.float32)
    for mod in builds():
        for kind, stored in ((0, w), (1, w.astype(np.float16))):
            raw = np.ascontiguousarray(stored).view(np.uint8)
            y = mod.matmul(kind, raw, 96, x)
            np.testing.assert_allclose(y, x @ stored.astype(np.float32).T, rtol=1e-5, atol=1e-5)


def test_the_dispatcher_takes_the_best_build_and_honours_portable(monkeypatch):
    assert _dispatch.choose("portable") is _native
    best = _dispatch.choose("")
    assert (
        best.__name__.rsplit(".", 1)[-1]
        == {0: "_native", 1: "_native_avx2", 2: "_native_vnni", 3: "_native_avx512"}[_native.cpu_level()]
    )
    assert best.AVX2 == (_native.cpu_level() >= 1)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    m = tiny_llama(seed=5)
    folder = tmp_path_factory.mktemp("native")
    return m, {q: write_tiny_gguf(m, folder / f"t-{q}.gguf", q) for q in ("F32", "Q8_0", "Q4_0")}


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64) - a.max(-1, keepdims=True)
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


def _kld(a: np.ndarray, b: np.ndarray) -> float:
    p, q = _log_softmax(a), _log_softmax(b)
    return float((np.exp(p) * (p - q)).sum(-1).mean())


def test_a_float_file_runs_as_the_pytorch_model(tiny_files):
    """F32 weights: no rounding anywhere, so the engine (norms, rotary pairs of the permuted Q/K
    rows, grouped-query attention, SiLU MLP) must give the PyTorch model's logits."""
    m, files = tiny_files
    ids = [BOS, 5, 77, 100, 3, 9, 200, 45, 12, 13]
    with torch.no_grad():
        ref = m(torch.tensor([ids])).logits[0].numpy()
    got = open_native(files["F32"], threads=2)(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5 * np.abs(ref).max())


def test_quantized_files_lose_little_to_the_rounded_activations(tiny_files):
    """Against the same file's dequantized PyTorch model (weights-only error): the KL divergence
    the activations' rounding adds stays below 1e-3 per token — a hidden size of 64 gives two
    chunks per row, the coarsest case — and the greedy choice is the same at nearly every position."""
    _, files = tiny_files
    ids = list(range(3, 60))
    for q in ("Q8_0", "Q4_0"):
        ref = load_gguf(files[q]).model
        with torch.no_grad():
            p = _log_softmax(ref(torch.tensor([ids])).logits[0].numpy())
        got = _log_softmax(open_native(files[q], threads=2)(torch.tensor([ids])).logits[0].numpy())
        kld = float((np.exp(p) * (p - got)).sum(-1).mean())
        assert kld < 1e-3, (q, kld)
        assert (p.argmax(-1) == got.argmax(-1)).mean() >= 0.9


def test_a_5_bit_output_head_takes_16_bit_activations(tiny_files, tmp_path):
    """The head's products are the logits: a Q5_1 file's logits, with 16-bit activations in its
    head (``head16``, the default), are nearer its weights-only model's than with 8-bit ones; a
    4-bit head keeps 8 bits (the same logits either way)."""
    m, files = tiny_files
    ids = torch.tensor([list(range(3, 60))])
    q51 = write_tiny_gguf(m, tmp_path / "t-Q5_1.gguf", "Q5_1")
    got = {}
    for path in (q51, files["Q4_0"]):
        for head16 in (True, False):
            lm = open_native(path, threads=2)
            lm.head16 = head16
            got[path, head16] = lm(ids).logits[0].numpy()
    with torch.no_grad():
        ref = load_gguf(q51).model(ids).logits[0].numpy()
    assert _kld(ref, got[q51, True]) < 0.8 * _kld(ref, got[q51, False])
    np.testing.assert_array_equal(got[files["Q4_0"], True], got[files["Q4_0"], False])


def test_a_file_of_lattice_types_runs_natively(tmp_path, capsys):
    """Every lattice type in one file (rows of 256): read in place by the kernels — the grids
    loaded from the gguf package — and within the activations' rounding of its dequantized
    PyTorch model; ``generate`` takes the compiled path."""
    m = tiny_llama(seed=7, hidden=256)
    kinds = {"attn_q": "IQ2_XXS", "attn_k": "IQ2_XS", "attn_v": "IQ2_S", "attn_output": "IQ3_XXS",
             "ffn_gate": "IQ3_S", "ffn_up": "IQ3_S", "ffn_down": "IQ3_XXS"}
    path = write_tiny_gguf(m, tmp_path / "iq.gguf", "Q8_0", kinds=kinds)
    assert why_not(path) is None
    types = {t.name.split(".")[-2]: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert {types[k] for k in kinds} == set(LATTICE)
    ids = list(range(3, 60))
    with torch.no_grad():
        p = _log_softmax(load_gguf(path).model(torch.tensor([ids])).logits[0].numpy())
    got = _log_softmax(open_native(path, threads=2)(torch.tensor([ids])).logits[0].numpy())
    assert float((np.exp(p) * (p - got)).sum(-1).mean()) < 1e-3
    assert (p.argmax(-1) == got.argmax(-1)).mean() >= 0.9
    gen = ["model", "generate", str(path), "ab", "--max-tokens", "3", "--temperature", "0", "--json"]
    assert main(gen) == 0
    assert "native" in json.loads(capsys.readouterr().out)["path"]


def test_a_grid_the_kernels_cannot_hold_is_refused(monkeypatch):
    """A lattice table outside whole numbers 0..127 (the kernels negate magnitudes in signed
    bytes) is named and refused — the file then runs on the PyTorch path — never loaded."""
    from types import SimpleNamespace

    from quanta.model.formats import lattice
    from quanta.model.runtime.native import Unsupported

    loaded = []
    fake = SimpleNamespace(sizes=lambda kind: (0, 0), load_grid=lambda kind, grid: loaded.append(kind))
    bad = SimpleNamespace(lattice=SimpleNamespace(values=np.full((512, 4), 130.0, np.float32)))
    monkeypatch.setitem(lattice.TYPES, "IQ3_S", bad)
    with pytest.raises(Unsupported, match=r"IQ3_S.*0 to 127"):
        load_grid(fake, int(gguf.GGMLQuantizationType.IQ3_S))
    load_grid(fake, int(gguf.GGMLQuantizationType.Q4_K))  # not a lattice type: nothing to load
    assert loaded == []


def test_a_lattice_grid_of_another_shape_or_type_is_refused():
    iq3s = int(gguf.GGMLQuantizationType.IQ3_S)
    with pytest.raises(ValueError, match="not a lattice type"):
        _native.load_grid(iq3s, np.zeros((256, 4), np.uint8))  # IQ3_S has 512 points
    with pytest.raises(ValueError, match="not a lattice type"):
        _native.load_grid(int(gguf.GGMLQuantizationType.Q4_0), np.zeros((256, 8), np.uint8))
    with pytest.raises(ValueError, match="not read by these kernels"):
        _native.dequantize(int(gguf.GGMLQuantizationType.BF16), np.zeros((1, 64), np.uint8), 32)


def test_steps_after_a_prefill_give_the_prefills_logits_and_threads_change_no_bit(tiny_files):
    _, files = tiny_files
    ids = [BOS, *range(20, 40)]
    one = open_native(files["Q4_0"], threads=1).decoder(64)
    all_at_once = one.forward(ids, True)
    one.reset()
    steps = np.stack([one.forward(ids[:3]), *[one.forward([i]) for i in ids[3:]]])
    # the one-token and several-token kernels sum in other orders: float differences of 1e-7 that
    # can move an activation across a rounding boundary downstream, a 1-step change; so the
    # criterion is on the distributions
    assert _kld(all_at_once[2:], steps) < 1e-4
    two = open_native(files["Q4_0"], threads=2).decoder(64)
    np.testing.assert_array_equal(two.forward(ids, True), all_at_once)  # rows are never split across threads
    with pytest.raises(ValueError, match="cache holds"):
        two.forward(list(range(60)))


def test_builds_agree_on_a_whole_model(tiny_files, monkeypatch):
    _, files = tiny_files
    ids = list(range(3, 40))
    lm = open_native(files["Q4_0"], threads=2)
    outs = []
    for mod in builds():
        monkeypatch.setattr(_dispatch, "kernels", mod)
        outs.append(lm._build(64).forward(ids, True))
    for o in outs[1:]:  # the same kernels' products to 1e-6 (above); whole models as the steps' test
        assert _kld(outs[0], o) < 1e-4


@pytest.mark.parametrize("family", ["mistral", "qwen2", "qwen3", "phi3"])
def test_every_gguf_family_runs_natively(family, tmp_path, capsys):
    """Qwen2's biases, Qwen3's head norms, Phi-3's fused projections, NeoX rotary order: each
    family's GGUF (quanta's exporter) through the kernels against its dequantized PyTorch model."""
    src = write_hf_folder(tmp_path / "hf", seed=11, family=family)
    out = tmp_path / "m.gguf"
    assert (
        main(
            [
                "model",
                "quantize",
                str(src),
                "-o",
                str(out),
                "--format",
                "gguf",
                "--bits",
                "8",
                "--method",
                "rtn",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert why_not(out) is None
    ids = list(range(3, 40))
    with torch.no_grad():
        p = _log_softmax(load_gguf(out).model(torch.tensor([ids])).logits[0].numpy())
    got = _log_softmax(open_native(out, threads=2)(torch.tensor([ids])).logits[0].numpy())
    assert float((np.exp(p) * (p - got)).sum(-1).mean()) < 1e-3


def test_what_the_kernels_do_not_run_is_named_and_falls_back(tmp_path, capsys):
    path = write_tiny_gguf(tiny_llama(seed=5), tmp_path / "bf16.gguf", "BF16")
    why = why_not(path)
    assert why and "BF16" in why
    assert (
        main(["model", "generate", str(path), "ab", "--max-tokens", "3", "--temperature", "0", "--json"]) == 0
    )
    gen = json.loads(capsys.readouterr().out)
    assert gen["generated_tokens"] == 3 and "native" not in gen["path"]
    assert main(["model", "generate", str(path), "ab", "--max-tokens", "2", "--verbose"]) == 0
    assert "compiled kernels not used: " in capsys.readouterr().err


def test_generate_runs_natively_and_greedy_text_matches_the_pytorch_path(tiny_files, capsys):
    _, files = tiny_files
    args = ["model", "generate", str(files["F32"]), "hi", *"--max-tokens 12 --temperature 0 --json".split()]
    assert main(args) == 0
    native = json.loads(capsys.readouterr().out)
    assert native["path"].startswith("native kernels")
    assert main([*args, "--eager"]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert "native" not in eager["path"] and native["token_ids"] == eager["token_ids"]


def test_native_sampling_is_seeded(tiny_files, capsys):
    _, files = tiny_files
    runs = []
    for seed in (3, 3, 4):
        assert (
            main(
                [
                    "model",
                    "generate",
                    str(files["Q8_0"]),
                    "hi",
                    "--max-tokens",
                    "24",
                    "--temperature",
                    "1.5",
                    "--top-p",
                    "0.95",
                    "--seed",
                    str(seed),
                    "--json",
                ]
            )
            == 0
        )
        runs.append(json.loads(capsys.readouterr().out)["token_ids"])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_eval_runs_natively_and_eager_reports_the_weights_only_figures(tiny_files, capsys, monkeypatch):
    from quanta.model.eval import harness

    _, files = tiny_files
    monkeypatch.setattr(harness, "wikitext2_test_text", lambda *a, **k: "the cat sat on the mat. " * 200)
    base = ["model", "eval", str(files["Q8_0"]), "-r", str(files["F32"]),
            *"--chunks 2 --ctx 48 --no-speed --json".split()]
    assert main(base) == 0
    native = json.loads(capsys.readouterr().out)
    assert main([*base, "--eager"]) == 0
    eager = json.loads(capsys.readouterr().out)
    n, e = native["measures"], eager["measures"]
    assert n["tokens_scored"] == e["tokens_scored"]
    assert abs(n["perplexity"] / e["perplexity"] - 1) < 0.02 and n["perplexity"] != e["perplexity"]
    assert abs(n["kld"] - e["kld"]) < 1e-3
    assert native["weight_bytes"] == eager["weight_bytes"] and native["quantized_params"] > 0


def test_the_file_is_read_in_place(tiny_files):
    """The engine's matrices are views of the file's map: nothing is copied or dequantized."""
    _, files = tiny_files
    lm = open_native(files["Q4_0"], threads=1)
    _, raw, _ = lm._parts[0, "m", 0]
    assert isinstance(raw.base, np.ndarray) or raw.base is not None
    assert not raw.flags.owndata and not raw.flags.writeable
    assert Path(lm.path) == files["Q4_0"]


def test_a_file_whose_shapes_disagree_with_its_header_is_refused_not_read_past(tmp_path, capsys):
    m = tiny_llama(seed=5)
    m.config.intermediate_size = 256  # the header says 256; the matrices hold 128
    path = write_tiny_gguf(m, tmp_path / "bad.gguf", "Q8_0")
    why = why_not(path)
    assert why and "header implies" in why and "ffn_gate" in why
    assert main(["model", "generate", str(path), "ab", "--max-tokens", "2"]) == 2  # one line, no crash
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
