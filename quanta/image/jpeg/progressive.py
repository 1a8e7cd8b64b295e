"""Progressive JPEG (T.81 Annex G): spectral selection and successive approximation, with the
scan layout chosen per component to minimise size and an optimal Huffman table per scan.

The frame holds the same quantized coefficients as the baseline encoder's; only their order in
the file changes. One interleaved DC scan comes first; each component then gets the AC layout
(bands and bit planes) that :func:`choose_layout` finds smallest among :data:`LAYOUTS` — tried
by point transform, shallowest first, deeper only while the shallower won — every candidate
scan counted exactly (its Huffman bits with its own optimal table, raw value and correction
bits, and its header bytes) from the blocks' nonzero coefficients by the compiled ``_scans``.
:func:`plan` decides every scan and the file's size before :func:`write` codes it (the encoder
writes only the structure the counted sizes show smaller); on large images both run their
steps on the threads.
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


def choose_layout(coefs: np.ndarray, idx: np.ndarray,
                  layouts: tuple[tuple[Scan, ...], ...] = LAYOUTS
                  ) -> tuple[tuple[Scan, ...], list[np.ndarray], int]:
    """The smallest AC layout for the blocks ``idx`` of one component (int16 zigzag ``coefs``):
    its scans, each scan's symbol counts (256) and the layout's size in bits (before stuffing).
    Every distinct candidate scan is counted once, exactly, from the blocks' nonzero
    coefficients and sized with its own optimal table (``_scans.scan_bits``); ties keep the
    earlier layout.

    The layouts are tried by their deepest point transform, shallowest first, and a deeper one
    only while the one before it won: successive approximation pays more the more bits it
    splits off, so once it stops paying, deeper layouts are not counted (on the 24 Kodak images
    at q 30–95 this chose what the search over every layout chose, in about half the time at
    q 75). :func:`plan` runs the same search (:class:`_Search`) for every component at once."""
    search = _Search(layouts, _scans.nonzeros(coefs, idx))
    while todo := search.todo():
        search.take([(g, *search.count(g, scans)) for g, scans in todo])
    return search.result()


class _Search:
    """One component's layout search (:func:`choose_layout`), in steps that may run on other
    threads: :meth:`todo` names the depth groups to count next and their scans not yet
    counted, :meth:`count` counts them (any thread), :meth:`take` decides (the caller's)."""

    def __init__(self, layouts: tuple[tuple[Scan, ...], ...], nonzero: tuple[np.ndarray, ...]) -> None:
        self.groups = _by_depth(layouts)
        self.nonzero = nonzero
        self.sizes: dict[Scan, tuple[int, np.ndarray]] = {}
        self.best: tuple[int, tuple[Scan, ...]] | None = None
        self.next = 0  # the next depth group to try; len(groups): done

    def todo(self) -> list[tuple[int, list[Scan]]]:
        """The next depth groups — the two shallowest at first (the second is always tried),
        then one at a time — each with its scans that no group before it counts."""
        first = range(self.next, min(self.next + (2 if self.best is None else 1), len(self.groups)))
        seen = set(self.sizes)
        out = []
        for g in first:
            scans = sorted({s for lay in self.groups[g] for s in lay} - seen)
            seen.update(scans)
            out.append((g, scans))
        return out

    def count(self, group: int, scans: list[Scan]) -> tuple[list[Scan], np.ndarray, np.ndarray]:
        """``scans``' sizes in bits and symbol counts."""
        freq = np.empty((len(scans), 256), dtype=np.int64)
        bits = _scans.scan_bits(*self.nonzero, np.asarray(scans, dtype=np.int32).reshape(-1, 4), freq,
                                _HEADER_BITS)
        if (bits < 0).any():
            raise ConfigError("Huffman code length overflow")
        return scans, bits, freq

    def take(self, counted: list[tuple[int, list[Scan], np.ndarray, np.ndarray]]) -> None:
        """Record counted groups (in depth order) and move on: the next group only while the
        last one won (ties keep the shallower)."""
        for _, scans, bits, freq in counted:
            self.sizes.update({s: (int(b), f) for s, b, f in zip(scans, bits, freq)})
        for g, *_ in counted:
            size, lay = min(((sum(self.sizes[s][0] for s in lay), lay) for lay in self.groups[g]),
                            key=lambda t: t[0])
            if self.best is not None and size >= self.best[0]:
                self.next = len(self.groups)
                return
            self.best, self.next = (size, lay), g + 1

    def result(self) -> tuple[tuple[Scan, ...], list[np.ndarray], int]:
        assert self.best is not None
        size, lay = self.best
        return lay, [self.sizes[s][1] for s in lay], size


@functools.cache
def _by_depth(layouts: tuple[tuple[Scan, ...], ...]) -> tuple[tuple[tuple[Scan, ...], ...], ...]:
    """``layouts`` grouped by their deepest point transform (``Al``), shallowest first, each
    group in the given order."""
    depth = [max(s[3] for s in lay) for lay in layouts]
    return tuple(tuple(lay for lay, d in zip(layouts, depth) if d == al) for al in sorted(set(depth)))


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

    On large images the steps run on the threads, the largest first: the DC scan's counts beside
    every component's nonzero lists (the largest component's in two halves), then each round of
    the components' searches with every depth group's scans cut by kind and point transform
    (:func:`_pieces`) — each piece counted alone gives the same counts.
    """
    layouts = layouts or LAYOUTS
    coefs = np.ascontiguousarray(coefs, dtype=np.int16)
    comp = np.ascontiguousarray(comp, dtype=np.int8)
    tbl = np.ascontiguousarray(selectors, dtype=np.int64)
    threads = threads_for(coefs.shape[0])
    idxs = [g.index() for g in geometry]
    # the DC scan (interleaved for colour; a gray frame's only component is non-interleaved,
    # which for 8×8 MCUs is the same blocks in the same order) counted beside the nonzero lists
    halves = [_halves(i, threads) for i in idxs]
    done = run_all([partial(_kernels.count_progressive, coefs, comp, tbl, _NO_INDEX, 0, 0, 0, 0)] +
                   [partial(_scans.nonzeros, coefs, h) for parts in halves for h in parts], threads)
    (freq, extra), lists = done[0], iter(done[1:])
    used = int(tbl.max()) + 1
    dcs = [huffman.optimal_table(freq[i]) for i in range(used)]
    bits = extra + markers_bits(dcs, len(ids)) + sum(
        int(freq[i] @ huffman.code_lengths(dcs[i])) for i in range(used))

    searches = [_Search(layouts, _joined([next(lists) for _ in parts])) for parts in halves]
    while todo := [(k, g, piece) for k, search in enumerate(searches) for g, scans in search.todo()
                   for piece in (_pieces(scans) if threads > 1 else [scans])]:
        todo.sort(key=lambda t: -idxs[t[0]].size)  # the largest component's pieces first
        counted = run_all([partial(searches[k].count, g, piece) for k, g, piece in todo], threads)
        for k, search in enumerate(searches):
            search.take(_merged([(g, *c) for (j, g, _), c in zip(todo, counted) if j == k]))
    chosen = [search.result() for search in searches]
    return Plan(coefs, comp, tbl, ids, dcs, [(i, *c[:2]) for i, c in zip(idxs, chosen)],
                bits + sum(c[2] for c in chosen))


def _halves(idx: np.ndarray, threads: int) -> list[np.ndarray]:
    """A component's blocks as the pieces its nonzero lists are built in: two halves for a
    component large enough to spread over threads, else one."""
    if threads <= 1 or threads_for(idx.size) <= 1:
        return [idx]
    return [idx[:idx.size // 2], idx[idx.size // 2:]]


def _joined(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """:func:`_scans.nonzeros` of consecutive pieces of a component's blocks as one list."""
    if len(parts) == 1:
        return parts[0]
    ends = [int(p[0][-1]) for p in parts]
    offsets = np.cumsum([0, *ends[:-1]])
    start = np.concatenate([p[0][:-1] + o for p, o in zip(parts, offsets)] + [np.array([sum(ends)])])
    return (start, np.concatenate([p[1][:e] for p, e in zip(parts, ends)]),
            np.concatenate([p[2][:e] for p, e in zip(parts, ends)]))


def _pieces(scans: list[Scan]) -> list[list[Scan]]:
    """``scans`` cut into the pieces counted on their own: the first scans of each point
    transform together (they share one pass), each refining scan alone."""
    firsts: dict[int, list[Scan]] = {}
    out: list[list[Scan]] = []
    for s in scans:
        if s[2] == 0:
            firsts.setdefault(s[3], []).append(s)
        else:
            out.append([s])
    return [*firsts.values(), *out]


def _merged(counted: list[tuple]) -> list[tuple]:
    """Counted pieces ``(group, scans, bits, freq)`` joined per depth group, in group order."""
    groups: dict[int, list] = {}
    for g, scans, bits, freq in counted:
        acc = groups.setdefault(g, [[], [], []])
        acc[0] += scans
        acc[1].append(bits)
        acc[2].append(freq)
    return [(g, scans, np.concatenate(bits), np.concatenate(freq))
            for g, (scans, bits, freq) in sorted(groups.items())]


def write(p: Plan) -> list[bytes]:
    """The DHT + SOS + entropy-coded segments of every scan of ``p``, in file order (on large
    images the scans are coded on the threads, each on its own, the costliest started first:
    refining scans, then by their component's blocks)."""
    work = [partial(_dc_segment, p)] + [partial(_ac_segment, p, cid, idx, scan, freq)
                                       for cid, (idx, chosen, counts) in zip(p.ids, p.components)
                                       for scan, freq in zip(chosen, counts)]
    cost = [p.coefs.shape[0]] + [idx.size * (2 if scan[2] else 1) for idx, chosen, _ in p.components
                                 for scan in chosen]
    order = sorted(range(len(work)), key=lambda i: -cost[i])
    done = run_all([work[i] for i in order], threads_for(p.coefs.shape[0]))
    out: list[bytes] = [b""] * len(work)
    for i, data in zip(order, done):
        out[i] = data
    return out


def _dc_segment(p: Plan) -> bytes:
    codes, sizes = _lookup(p.dcs, None)
    data = _kernels.encode_progressive(p.coefs, p.comp, p.selectors, _NO_INDEX, 0, 0, 0, 0, codes, sizes)
    sos = writer.sos([(cid, int(s), 0) for cid, s in zip(p.ids, p.selectors)], 0, 0, 0, 0)
    return writer.dht([(0, i, t) for i, t in enumerate(p.dcs)]) + sos + data.tobytes()


def _ac_segment(p: Plan, cid: int, idx: np.ndarray, scan: Scan, freq: np.ndarray) -> bytes:
    ac = huffman.optimal_table(freq)
    codes, sizes = _lookup(p.dcs, ac)
    data = _kernels.encode_progressive(p.coefs, p.comp, p.selectors, idx, *scan, codes, sizes)
    return writer.dht([(1, 0, ac)]) + writer.sos([(cid, 0, 0)], *scan) + data.tobytes()
