"""Throughput of the core kernels against a plain numpy baseline of the same operation.

    python bench/core_throughput.py [--n 4000000]

Prints Melements/s (median of 5 runs) and writes bench/out/core_throughput.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import machine, median_time, write_json
from quanta.core import (
    Grid,
    choose_qparams,
    dequantize,
    dither_noise,
    error_feedback_quantize,
    pack,
    quantize,
    unpack,
)
from quanta.render.tables import print_table

E9 = [1.0, -2.412, 3.370, -3.937, 4.174, -3.353, 2.205, -1.281, 0.569]


def numpy_quantize(w, s, z, qmin, qmax):
    b = w.reshape(-1, 128)
    return np.clip(np.rint(b / s.reshape(-1, 1) + z.reshape(-1, 1)), qmin, qmax).astype(np.int8)


def numpy_dequantize(c, s, z):
    b = c.reshape(-1, 128).astype(np.float32)
    return (b - z.reshape(-1, 1)) * s.reshape(-1, 1)


def numpy_pack(codes, bits):
    """Bit-matrix packing with np.packbits: the obvious numpy way."""
    bitmat = (codes.reshape(-1, 1) >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(bitmat.astype(np.uint8).ravel(), bitorder="little")


def numpy_unpack(data, bits, n):
    bitmat = np.unpackbits(data, count=n * bits, bitorder="little").reshape(n, bits)
    return (bitmat << np.arange(bits, dtype=np.uint8)).sum(axis=1).astype(np.uint8)


def python_error_feedback(x, d, b):
    """The same noise shaper as a per-sample loop over numpy scalars."""
    order = len(b) - 1
    hist = np.zeros(order)
    out = np.empty(x.size, dtype=np.int32)
    for i in range(x.size):
        v = x[i] + np.dot(b[1:], hist)
        q = np.floor(v + d[i] + 0.5)
        hist = np.roll(hist, 1)
        hist[0] = q - v
        out[i] = q
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4_000_000, help="elements per operation")
    args = ap.parse_args()
    n = args.n - args.n % 1024
    rng = np.random.default_rng(0)
    w = rng.normal(size=(n // 1024, 1024)).astype(np.float32)
    grid = Grid(4, granularity="group", axis=1, group_size=128)
    qp = choose_qparams(w, grid)
    codes = quantize(w, qp)
    ucodes4 = (codes.astype(np.int16) + 8).astype(np.uint8)
    ucodes3 = (ucodes4 >> 1).astype(np.uint8)
    s, z = np.asarray(qp.scale), np.asarray(qp.zero_point)
    rows, results = [], []

    def add(op, quanta_fn, base_fn, elements, base_elements=None, base_name="numpy"):
        tq = median_time(quanta_fn)
        tb = median_time(base_fn, repeat=3)
        mq, mb = elements / tq / 1e6, (base_elements or elements) / tb / 1e6
        results.append({"op": op, "quanta_melem_s": mq, "baseline": base_name,
                        "baseline_melem_s": mb, "speedup": mq / mb})
        rows.append([op, f"{mq:,.1f}", base_name, f"{mb:,.3g}", f"{mq / mb:,.2f}×"])

    # sanity: both sides compute the same thing
    assert np.array_equal(numpy_quantize(w, s, z, -8, 7).reshape(w.shape), codes)
    assert np.array_equal(pack(ucodes3.ravel(), 3), numpy_pack(ucodes3.ravel(), 3))

    add("quantize int4 g128", lambda: quantize(w, qp), lambda: numpy_quantize(w, s, z, -8, 7), n)
    add("dequantize int4 g128", lambda: dequantize(codes, qp), lambda: numpy_dequantize(codes, s, z), n)
    p4, p3 = pack(ucodes4.ravel(), 4), pack(ucodes3.ravel(), 3)
    add("pack 4-bit", lambda: pack(ucodes4.ravel(), 4), lambda: numpy_pack(ucodes4.ravel(), 4), n)
    add("pack 3-bit", lambda: pack(ucodes3.ravel(), 3), lambda: numpy_pack(ucodes3.ravel(), 3), n)
    add("unpack 4-bit", lambda: unpack(p4, 4, n), lambda: numpy_unpack(p4, 4, n), n)
    add("unpack 3-bit", lambda: unpack(p3, 3, n), lambda: numpy_unpack(p3, 3, n), n)

    m = min(n, 2_000_000)
    x = rng.normal(size=m) * 1000
    d = dither_noise(m, "tpdf", seed=0)[:, 0]
    small = 20_000
    b = np.array(E9)
    # Same codes as the reference loop. Error feedback through a 9-tap shaper is chaotic: a
    # last-bit difference in the filter sum's order (numpy's dot vs the kernel's fixed partial
    # sums) flips one rounding and the streams diverge after a few thousand samples, so the
    # check covers the first 1,000.
    check = 1_000
    assert np.array_equal(python_error_feedback(x[:check], d[:check], b),
                          error_feedback_quantize(x[:check], b=b, dither=d[:check])[0])
    add("error feedback, 9-tap FIR", lambda: error_feedback_quantize(x, b=b, dither=d),
        lambda: python_error_feedback(x[:small], d[:small], b), m, small, "per-sample numpy loop")

    print_table(f"core throughput, Melements/s (median of 5; {machine()})",
                ["operation", "quanta", "baseline", "baseline Melem/s", "ratio"], rows, left=(0, 2))
    path = write_json("core_throughput", {"n": n, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
