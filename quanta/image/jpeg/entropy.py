"""Entropy coding of quantized blocks: DC prediction, AC run-lengths, Huffman codes, byte
stuffing and restart markers (T.81 F.1.2), compiled ahead of time (``_kernels.pyx``) — one
pass to count symbols (for optimized tables), one to write bits.

Blocks arrive in scan order as ``(N, 64)`` int16 coefficients in zigzag order, with the
component index of each block; ``blocks_per_mcu`` blocks form one MCU.
"""

from __future__ import annotations

from functools import partial
from itertools import pairwise

import numpy as np

from quanta.image.jpeg._dispatch import kernels as _kernels

#: Worst case of one block's entropy-coded bytes (see ``_kernels.pyx``).
MAX_BYTES_PER_BLOCK: int = _kernels.MAX_BYTES_PER_BLOCK


def _check_scan(coefs: np.ndarray, comp: np.ndarray, tables: np.ndarray, blocks_per_mcu: int,
                restart: int) -> None:
    if coefs.ndim != 2 or coefs.shape[1] != 64 or coefs.dtype != np.int16:
        raise ValueError(f"coefficients must be int16 (N, 64), got {coefs.dtype} {coefs.shape}")
    if comp.shape != (coefs.shape[0],):
        raise ValueError("one component index per block is needed")
    if comp.size and (comp.min() < 0 or comp.max() >= tables.size):
        raise ValueError("component index without a table selector")
    if blocks_per_mcu < 1 or coefs.shape[0] % blocks_per_mcu or restart < 0:
        raise ValueError("blocks must form whole MCUs; restart interval must be ≥ 0")


def _comp(comp: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(comp, dtype=np.int8)


def count_symbols(coefs: np.ndarray, comp: np.ndarray, tables: np.ndarray, blocks_per_mcu: int,
                  restart: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symbol counts per Huffman table, ``(dc_freq, ac_freq)``, each ``(2, 256)`` int64.

    coefs: int16 ``(N, 64)`` zigzag blocks in scan order; comp: each block's component;
    tables: each component's table selector (0 or 1, used for DC and AC alike).
    """
    dc, ac, _ = count(coefs, comp, tables, blocks_per_mcu, restart)
    return dc, ac


def count(coefs: np.ndarray, comp: np.ndarray, tables: np.ndarray, blocks_per_mcu: int,
          restart: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`count_symbols` and the value bits that follow the symbols. Large scans without
    restart markers are counted in parts on the threads (cut between MCUs, each part starting
    from the DC predictors the part before leaves): the counts add up to one pass's."""
    from quanta.image.jpeg._parallel import run_all, threads_for

    _check_scan(coefs, comp, tables, blocks_per_mcu, restart)
    t = np.ascontiguousarray(tables, dtype=np.int64)
    coefs, comp = np.ascontiguousarray(coefs), _comp(comp)
    per_mcu, mcus = int(blocks_per_mcu), coefs.shape[0] // max(int(blocks_per_mcu), 1)
    parts = threads_for(coefs.shape[0]) if not restart else 1
    if parts <= 1 or mcus < parts:
        return _kernels.count_symbols(coefs, comp, t, t, per_mcu, int(restart))
    cuts = [per_mcu * (mcus * k // parts) for k in range(parts)] + [coefs.shape[0]]
    done = run_all([partial(_kernels.count_symbols, coefs[a:b], comp[a:b], t, t, per_mcu, 0,
                            _predictors(coefs, comp, a, per_mcu)) for a, b in pairwise(cuts)], parts)
    return (sum(d[0] for d in done), sum(d[1] for d in done), sum(d[2] for d in done))


def _predictors(coefs: np.ndarray, comp: np.ndarray, start: int, per_mcu: int) -> np.ndarray:
    """Each component's DC predictor at block ``start`` (an MCU boundary; every component has
    blocks in each MCU): its last DC in the MCU before, 0 at the scan's start."""
    pred = np.zeros(4, dtype=np.int64)
    for dc, c in zip(coefs[max(start - per_mcu, 0):start, 0], comp[max(start - per_mcu, 0):start]):
        pred[c] = dc  # a later block of the component overwrites an earlier one
    return pred


def scan_bits(coefs: np.ndarray) -> int:
    """Bits of one component's blocks (zigzag int16 ``(N, 64)``) in a baseline scan with its own
    optimal Huffman tables: code lengths times counts, plus value bits (before stuffing)."""
    from quanta.image.jpeg import huffman

    one = np.zeros(coefs.shape[0], dtype=np.int8)
    dc, ac, extra = count(coefs, one, np.zeros(1, dtype=np.int64), 1, 0)
    return extra + sum(int(f[0] @ huffman.code_lengths(huffman.optimal_table(f[0]))) for f in (dc, ac))


def encode_scan(coefs: np.ndarray, comp: np.ndarray, tables: np.ndarray, codes: np.ndarray,
                sizes: np.ndarray, blocks_per_mcu: int, restart: int = 0) -> np.ndarray:
    """The entropy-coded scan (stuffed bytes with RSTn markers) as a uint8 array.

    codes/sizes: ``(4, 256)`` lookup tables, rows 0–1 the DC tables, rows 2–3 the AC tables.
    """
    _check_scan(coefs, comp, tables, blocks_per_mcu, restart)
    if codes.shape != (4, 256) or sizes.shape != (4, 256):
        raise ValueError("code and size tables must be (4, 256)")
    t = np.ascontiguousarray(tables, dtype=np.int64)
    return _kernels.encode_scan(np.ascontiguousarray(coefs), _comp(comp), t, t,
                                np.ascontiguousarray(codes, dtype=np.uint32),
                                np.ascontiguousarray(sizes, dtype=np.uint8), int(blocks_per_mcu),
                                int(restart))
