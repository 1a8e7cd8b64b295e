"""A toy medium for the tests: text files of numbers, requantized to 4 bits with seeded TPDF
dither through the core. Registered by one line (see tests/test_media_contract.py) and then
reached by the CLI, ``quanta info`` and the contract tests with no other edit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quanta.core.dither import dither_noise
from quanta.core.grid import Grid, QParams, dequantize, quantize
from quanta.errors import InputError
from quanta.media import Medium
from quanta.reports import Report

MEDIUM = Medium("toy", "Toy: numbers in a text file to 4 bits (a test medium).", "tests.toy_medium",
                extras=("numpy",), suffix=".txt")


@dataclass(frozen=True)
class ToyReport(Report):
    input: str
    output: str
    values: int
    snr_db: float


@dataclass(frozen=True)
class Options:
    bits: int = 4


def quantize_file(src, dst, options: Options, *, seed=0, progress=None):
    bits = options.bits
    try:
        x = np.array([float(v) for v in Path(src).read_text().split()])
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{src}: not a text file of numbers ({type(e).__name__})") from None
    if x.size == 0 or not np.isfinite(x).all():
        raise InputError(f"{src}: no finite numbers")
    qp = QParams.given(Grid(bits=bits, signed=True), scale=max(float(np.abs(x).max()), 1e-12) / 7)
    y = np.empty_like(x)
    for start in range(0, x.size, 16):  # in blocks, to report progress
        part = x[start:start + 16]
        d = dither_noise(part.size, "tpdf", seed=seed + start)[:, 0] * float(qp.scale)
        y[start:start + 16] = dequantize(quantize(part + d, qp), qp)
        if progress:
            progress(min(start + 16, x.size), x.size)
    Path(dst).write_text(" ".join(f"{v:.6g}" for v in y))
    from quanta.core.measures import snr_db

    return ToyReport(str(src), str(dst), int(x.size), snr_db(x, y) if np.any(y != x) else float("inf"))


def example(folder, *, seed=0):
    p = Path(folder) / "example.txt"
    p.write_text(" ".join(f"{v:.6f}" for v in np.random.default_rng(seed).normal(size=100)))
    return p

