"""Progressive JPEG (T.81 Annex G): spectral selection and successive approximation, with the
scan layout chosen per component to minimise size and an optimal Huffman table per scan.

The frame holds the same quantized coefficients as the baseline encoder's; only their order in
the file changes. One interleaved DC scan comes first; each component then gets the AC layout
(bands and bit planes) that :func:`choose_layout` finds smallest among :data:`LAYOUTS`, every
candidate scan counted exactly (its Huffman bits with its own optimal table, raw value and
correction bits, and its header bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import pairwise

import numpy as np

from quanta.image.jpeg import _kernels, huffman, writer
from quanta.image.jpeg._parallel import run_all, threads_for

Table = tuple[list[int], list[int]]
Scan = tuple[int, int, int, int]  # (Ss, Se, Ah, Al)


def _layout(bands: tuple[int, ...], al: int) -> tuple[Scan, ...]:
    """First scans over the bands split after each position in ``bands`` at bit ``al``, then one
    refining scan per lower bit."""
    edges = (0, *bands, 63)
    first = tuple((lo + 1, hi, 0, al) for lo, hi in pairwise(edges))
    return first + tuple((1, 63, a, a - 1) for a in range(al, 0, -1))


#: AC layouts tried for each component: bands split after the listed zigzag positions, at the
#: point transform ``al`` (successive approximation refines the lower bits afterwards).
LAYOUTS: tuple[tuple[Scan, ...], ...] = tuple(
    _layout(bands, al) for al in (0, 1, 2) for bands in ((), (2,), (9,), (2, 9)))


@dataclass(frozen=True)
class Geometry:
    """One component's blocks: its rows in the scan-ordered coefficient array, in raster
    order over the padded plane, and the part a non-interleaved scan covers."""

    rows: np.ndarray  # scan-order row of each padded block, raster order
    padded: tuple[int, int]  # block rows, block columns of the padded plane
    coded: tuple[int, int]  # block rows, block columns a non-interleaved scan codes

    def index(self) -> np.ndarray:
        """Rows (in the scan-ordered array) of the coded blocks, raster order."""
        r, c = np.mgrid[0:self.coded[0], 0:self.coded[1]]
        return np.ascontiguousarray(self.rows[(r * self.padded[1] + c).ravel()], dtype=np.intp)


_NO_INDEX = np.zeros(0, dtype=np.intp)
_HEADER_BITS = 8 * (2 + 2 + 1 + 2 + 3 + 2 + 1 + 16)  # SOS with one component, DHT with its counts


def last_nonzero(coefs: np.ndarray) -> np.ndarray:
    """Each block's last nonzero AC position in zigzag order (0 when it has none), int16."""
    ac = coefs[:, 1:] != 0
    return np.where(ac.any(axis=1), 63 - ac[:, ::-1].argmax(axis=1), 0).astype(np.int16)


def _scan_bits(coefs: np.ndarray, last: np.ndarray, idx: np.ndarray, scan: Scan) -> int:
    """Exact size in bits of an AC scan with its own optimal table (before byte stuffing)."""
    freq, extra = _kernels.count_progressive(coefs, np.zeros(0, np.int8), np.zeros(1, np.int64), last,
                                             idx, *scan)
    table = huffman.optimal_table(freq[2])
    return int(freq[2] @ huffman.code_lengths(table)) + extra + _HEADER_BITS + 8 * len(table[1])


def choose_layout(coefs: np.ndarray, last: np.ndarray, idx: np.ndarray,
                  layouts: tuple[tuple[Scan, ...], ...] = LAYOUTS) -> tuple[Scan, ...]:
    """The smallest AC layout for the blocks ``idx`` of one component (each distinct scan
    counted once); ``last``: :func:`last_nonzero` of ``coefs``."""
    cache: dict[Scan, int] = {}

    def bits(scan: Scan) -> int:
        if scan not in cache:
            cache[scan] = _scan_bits(coefs, last, idx, scan)
        return cache[scan]

    return min(layouts, key=lambda lay: sum(bits(s) for s in lay))


def _lookup(dc: list[Table], ac: Table | None) -> tuple[np.ndarray, np.ndarray]:
    codes = np.zeros((4, 256), dtype=np.uint32)
    sizes = np.zeros((4, 256), dtype=np.uint8)
    for row, t in enumerate(dc[:2]):
        codes[row], sizes[row] = huffman.code_lookup(t)
    if ac is not None:
        codes[2], sizes[2] = huffman.code_lookup(ac)
    return codes, sizes


def scans(coefs: np.ndarray, comp: np.ndarray, selectors: np.ndarray, ids: list[int],
          geometry: list[Geometry], layouts: tuple[tuple[Scan, ...], ...] | None = None) -> list[bytes]:
    """The DHT + SOS + entropy-coded segments of every scan, in file order.

    coefs: int16 ``(N, 64)`` zigzag blocks in interleaved (MCU) order, ``comp`` each block's
    component; selectors: each component's DC table; ids: each component's id; layouts: the AC
    layouts to choose from (default :data:`LAYOUTS`).
    """
    layouts = layouts or LAYOUTS
    coefs = np.ascontiguousarray(coefs, dtype=np.int16)
    comp = np.ascontiguousarray(comp, dtype=np.int8)
    tbl = np.ascontiguousarray(selectors, dtype=np.int64)
    out = []
    # the DC scan: interleaved for colour; a gray frame's only component is non-interleaved,
    # which for 8×8 MCUs is the same blocks in the same order
    last = last_nonzero(coefs)
    freq, _ = _kernels.count_progressive(coefs, comp, tbl, last, _NO_INDEX, 0, 0, 0, 0)
    used = int(tbl.max()) + 1
    dcs = [huffman.optimal_table(freq[i]) for i in range(used)]
    codes, sizes = _lookup(dcs, None)
    data = _kernels.encode_progressive(coefs, comp, tbl, last, _NO_INDEX, 0, 0, 0, 0, codes, sizes)
    out.append(writer.dht([(0, i, dcs[i]) for i in range(used)])
               + writer.sos([(cid, int(s), 0) for cid, s in zip(ids, tbl)], 0, 0, 0, 0)
               + data.tobytes())

    def component(cid: int, geo: Geometry) -> list[bytes]:
        idx, segments = geo.index(), []
        for scan in choose_layout(coefs, last, idx, layouts):
            freq, _ = _kernels.count_progressive(coefs, comp, tbl, last, idx, *scan)
            ac = huffman.optimal_table(freq[2])
            codes, sizes = _lookup(dcs, ac)
            data = _kernels.encode_progressive(coefs, comp, tbl, last, idx, *scan, codes, sizes)
            segments.append(writer.dht([(1, 0, ac)]) + writer.sos([(cid, 0, 0)], *scan) + data.tobytes())
        return segments

    # components are independent: their layout searches run in parallel threads on large images
    for segments in run_all([partial(component, c, g) for c, g in zip(ids, geometry)],
                            threads_for(coefs.shape[0])):
        out += segments
    return out
