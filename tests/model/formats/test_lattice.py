"""llama.cpp's lattice types (IQ2_XXS … IQ3_S): quanta's bytes against the ``gguf`` package's
dequantizer, their sizes, and what the packer refuses."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

from quanta.errors import ConfigError
from quanta.model.formats import lattice
from quanta.model.formats.weight import BLOCK_TYPES, gguf_formats

TYPES = list(lattice.TYPES)


def _weights(rows: int = 24, cols: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    x[:, 7] *= 10  # an outlier column
    x[3] = 0.0  # an all-zero row: d = 0
    return x, rng.uniform(0.1, 4, cols).astype(np.float32)


def _dequantized(codes: np.ndarray, scales: np.ndarray, kind: str) -> np.ndarray:
    sub = lattice.TYPES[kind].sub
    levels = lattice.codebook(kind)[codes].reshape(len(codes), -1, sub)
    return (levels * scales[..., None]).reshape(codes.shape)


@pytest.mark.parametrize("kind", TYPES)
def test_the_gguf_dequantizer_reads_quantas_blocks_exactly(kind):
    x, imp = _weights()
    codes, scales = lattice.quantize(x, kind, imp)
    data = lattice.pack(codes, scales, kind)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[kind]]
    assert data.shape == (len(x), x.shape[1] // block * size) and data.dtype == np.uint8
    theirs = dequantize(data, GGMLQuantizationType[kind]).reshape(x.shape)
    np.testing.assert_array_equal(theirs, _dequantized(codes, scales, kind))
    assert np.all(theirs[3] == 0)
    rel = float((((x - theirs) ** 2) * imp).sum() / ((x * x) * imp).sum())
    assert rel < {"IQ2_XXS": 0.15, "IQ2_XS": 0.12, "IQ2_S": 0.09, "IQ3_XXS": 0.045, "IQ3_S": 0.03}[kind]


def test_more_bits_less_error_and_the_importance_weights_move_it():
    x, imp = _weights(rows=64, cols=1024, seed=1)
    errs = []
    for kind in TYPES:  # by bits per weight: 2.06, 2.31, 2.56, 3.06, 3.44
        codes, scales = lattice.quantize(x, kind, imp)
        errs.append(float((((x - _dequantized(codes, scales, kind)) ** 2) * imp).sum()))
    assert errs == sorted(errs, reverse=True), errs
    plain, scales = lattice.quantize(x, "IQ3_S")
    unweighted = float((((x - _dequantized(plain, scales, "IQ3_S")) ** 2) * imp).sum())
    assert errs[-1] < 0.95 * unweighted


def test_the_packer_refuses_what_the_type_cannot_hold():
    x, imp = _weights()
    codes, scales = lattice.quantize(x, "IQ2_XXS", imp)
    bad = codes.copy()
    off = np.flatnonzero(codes[0, :8] >= 3)[0]  # one weight's sign flipped: an odd run of 8 signs
    bad[0, off] = 5 - bad[0, off]
    with pytest.raises(ConfigError, match="odd count of negatives"):
        lattice.pack(bad, scales, "IQ2_XXS")
    with pytest.raises(ConfigError, match="not on its grid"):
        lattice.pack(codes, scales * 1.001, "IQ2_XXS")
    codes3, scales3 = lattice.quantize(x, "IQ3_S", imp)
    lat = lattice._lattice("IQ3_S")
    k = len(lat.levels)
    every = (np.arange(k**4)[:, None] // k ** np.arange(4)) % k
    off = every[lat.index(every) < 0][0]  # 8 levels in 4 places: 4096 vectors, 512 of them points
    bad = codes3.copy()
    bad[0, :4] = k + off  # positive weights on those levels
    with pytest.raises(ConfigError, match="not on its grid"):
        lattice.pack(bad, scales3, "IQ3_S")
    with pytest.raises(ConfigError, match="multiple of 256"):
        lattice.quantize(x[:, :320], "IQ3_S")


def test_lattice_types_are_block_types_of_256_offered_where_rows_fit():
    for kind in TYPES:
        t = BLOCK_TYPES[kind]
        assert t.lattice and t.block == 256 and t.group == lattice.TYPES[kind].sub
        assert t.nbytes(512) == 2 * GGML_QUANT_SIZES[GGMLQuantizationType[kind]][1]
    labels = {f.label for f in gguf_formats(True, 512)}
    assert set(TYPES) <= labels
    assert not set(TYPES) & {f.label for f in gguf_formats(True, 576)}
    assert not set(TYPES) & {f.label for f in gguf_formats(False, 512)}  # methods that round on levels
    assert not set(TYPES) & {f.label for f in gguf_formats(True, 512, lattice=False)}
