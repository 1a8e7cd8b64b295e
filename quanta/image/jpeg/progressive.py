"""Progressive JPEG (T.81 Annex G): spectral selection and successive approximation, with the
scan layout chosen per component to minimise size and an optimal Huffman table per scan.

The frame holds the same quantized coefficients as the baseline encoder's; only their order in
the file changes. One interleaved DC scan comes first; each component then gets the AC layout
(bands and bit planes) that :func:`choose_layout` finds smallest among :data:`LAYOUTS`, every
candidate scan counted exactly (its Huffman bits with its own optimal table, raw value and
correction bits, and its header bytes) from the blocks' nonzero coefficients by the compiled
``_scans``. :func:`plan` decides every scan and the file's size before :func:`write` codes it
(the encoder writes only the structure the counted sizes show smaller).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import partial
from itertools import pairwise

import numpy as np

from quanta.errors import ConfigError
from quanta.image.jpeg import _scans, huffman, writer
from quanta.image.jpeg._dispatch import kernels as _kernels
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


def markers_bits(tables: list[Table], components: int) -> int:
    """Bits of a DHT holding ``tables`` and an SOS of ``components`` components."""
    return 8 * (4 + sum(17 + len(t[1]) for t in tables) + 6 + 2 * components)


def last_nonzero(coefs: np.ndarray) -> np.ndarray:
    """Each block's last nonzero AC position in zigzag order (0 when it has none), int16."""
    return _scans.last_nonzero(np.ascontiguousarray(coefs, dtype=np.int16))


def choose_layout(coefs: np.ndarray, idx: np.ndarray, last: np.ndarray,
                  layouts: tuple[tuple[Scan, ...], ...] = LAYOUTS
                  ) -> tuple[tuple[Scan, ...], list[np.ndarray], int]:
    """The smallest AC layout for the blocks ``idx`` of one component (``last``: each block's
    :func:`last_nonzero`): its scans, each scan's symbol counts (256) and the layout's size in
    bits (before stuffing). Every distinct
    candidate scan is counted once, exactly, from the blocks' nonzero coefficients and sized
    with its own optimal table (``_scans.scan_bits``); ties keep the earlier layout."""
    distinct, rows, members = _candidates(layouts)
    freq = np.empty((len(distinct), 256), dtype=np.int64)
    bits = _scans.scan_bits(*_scans.nonzeros(coefs, idx, last), distinct, freq, _HEADER_BITS)
    if (bits < 0).any():
        raise ConfigError("Huffman code length overflow")
    sizes = rows @ bits  # each layout's bits (rows: which distinct scans it holds)
    best = int(np.argmin(sizes))  # the first smallest: ties keep the earlier layout
    return layouts[best], [freq[k] for k in members[best]], int(sizes[best])


@functools.cache
def _candidates(layouts: tuple[tuple[Scan, ...], ...]
                ) -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, ...], ...]]:
    """The distinct scans of ``layouts`` (int32 ``(k, 4)``), which of them each layout holds
    (int64 ``(layouts, k)`` of 0/1) and, per layout, their rows in scan order."""
    distinct = sorted({s for lay in layouts for s in lay})
    rows = np.array([[int(s in lay) for s in distinct] for lay in layouts], dtype=np.int64)
    members = tuple(tuple(distinct.index(s) for s in lay) for lay in layouts)
    return np.asarray(distinct, dtype=np.int32), rows, members


def _lookup(dc: list[Table], ac: Table | None) -> tuple[np.ndarray, np.ndarray]:
    codes = np.zeros((4, 256), dtype=np.uint32)
    sizes = np.zeros((4, 256), dtype=np.uint8)
    for row, t in enumerate(dc[:2]):
        codes[row], sizes[row] = huffman.code_lookup(t)
    if ac is not None:
        codes[2], sizes[2] = huffman.code_lookup(ac)
    return codes, sizes


@dataclass(frozen=True)
class Plan:
    """A progressive file's scans, decided: the DC scan's tables, each component's AC scans
    with their symbol counts, and the scans' size in bits (markers included, before stuffing)."""

    coefs: np.ndarray
    comp: np.ndarray
    selectors: np.ndarray
    ids: list[int]
    dcs: list[Table]
    components: list[tuple[np.ndarray, tuple[Scan, ...], list[np.ndarray]]]  # (idx, scans, counts)
    bits: int

    @property
    def bytes(self) -> int:
        """The scans' size in bytes before stuffing (each scan padded to a whole byte)."""
        return self.bits // 8 + 1 + sum(len(scans) for _, scans, _ in self.components)


def plan(coefs: np.ndarray, comp: np.ndarray, selectors: np.ndarray, ids: list[int],
         geometry: list[Geometry], layouts: tuple[tuple[Scan, ...], ...] | None = None) -> Plan:
    """Decide every scan of the progressive file (nothing written yet).

    coefs: int16 ``(N, 64)`` zigzag blocks in interleaved (MCU) order, ``comp`` each block's
    component; selectors: each component's DC table; ids: each component's id; layouts: the AC
    layouts to choose from (default :data:`LAYOUTS`).
    """
    layouts = layouts or LAYOUTS
    coefs = np.ascontiguousarray(coefs, dtype=np.int16)
    comp = np.ascontiguousarray(comp, dtype=np.int8)
    tbl = np.ascontiguousarray(selectors, dtype=np.int64)
    # the DC scan: interleaved for colour; a gray frame's only component is non-interleaved,
    # which for 8×8 MCUs is the same blocks in the same order
    last = last_nonzero(coefs)
    freq, extra = _kernels.count_progressive(coefs, comp, tbl, _NO_INDEX, 0, 0, 0, 0)
    used = int(tbl.max()) + 1
    dcs = [huffman.optimal_table(freq[i]) for i in range(used)]
    bits = extra + markers_bits(dcs, len(ids)) + sum(
        int(freq[i] @ huffman.code_lengths(dcs[i])) for i in range(used))

    def component(geo: Geometry) -> tuple[np.ndarray, tuple[Scan, ...], list[np.ndarray], int]:
        idx = geo.index()
        return idx, *choose_layout(coefs, idx, last, layouts)

    # components are independent: their layout searches run in parallel threads on large images
    chosen = run_all([partial(component, g) for g in geometry], threads_for(coefs.shape[0]))
    return Plan(coefs, comp, tbl, ids, dcs, [c[:3] for c in chosen],
                bits + sum(c[3] for c in chosen))


def write(p: Plan) -> list[bytes]:
    """The DHT + SOS + entropy-coded segments of every scan of ``p``, in file order."""
    codes, sizes = _lookup(p.dcs, None)
    data = _kernels.encode_progressive(p.coefs, p.comp, p.selectors, _NO_INDEX, 0, 0, 0, 0,
                                       codes, sizes)
    out = [writer.dht([(0, i, t) for i, t in enumerate(p.dcs)])
           + writer.sos([(cid, int(s), 0) for cid, s in zip(p.ids, p.selectors)], 0, 0, 0, 0)
           + data.tobytes()]

    def component(cid: int, idx: np.ndarray, chosen: tuple[Scan, ...],
                  counts: list[np.ndarray]) -> list[bytes]:
        segments = []
        for scan, freq in zip(chosen, counts):
            ac = huffman.optimal_table(freq)
            codes, sizes = _lookup(p.dcs, ac)
            data = _kernels.encode_progressive(p.coefs, p.comp, p.selectors, idx, *scan, codes, sizes)
            segments.append(writer.dht([(1, 0, ac)]) + writer.sos([(cid, 0, 0)], *scan) + data.tobytes())
        return segments

    for segments in run_all([partial(component, cid, *c) for cid, c in zip(p.ids, p.components)],
                            threads_for(p.coefs.shape[0])):
        out += segments
    return out
