"""The compiled progressive layout search (``_scans``), the Huffman tables, the chroma's
2×2 spread and the fitted chroma against plain oracles (:mod:`tests.image.jpeg_reference`),
and "auto" choosing baseline or progressive from counted sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from quanta.image.jpeg import _kernels, _scans, encode, encoder, huffman, progressive
from tests.image import jpeg_reference as ref


def _freqs(rng: np.random.Generator) -> list[np.ndarray]:
    heavy = np.zeros(256, np.int64)
    heavy[rng.choice(256, 200, replace=False)] = (rng.pareto(0.3, 200) * 50).astype(np.int64) + 1
    fib = np.zeros(256, np.int64)  # Fibonacci counts: code lengths far past 16 before the limit
    a, b = 1, 1
    for i in range(40):
        fib[i] = a
        a, b = b, a + b
    one = np.zeros(256, np.int64)
    one[0x37] = 5
    ties = np.zeros(256, np.int64)
    ties[::3] = 7
    return [heavy, fib, one, ties, np.zeros(256, np.int64),
            *(rng.integers(0, 1000, 256) * (rng.random(256) < p) for p in (0.05, 0.5, 1.0))]


def test_huffman_tables_are_figure_k1_and_k3():
    for f in _freqs(np.random.default_rng(3)):
        assert huffman.optimal_table(f) == ref.huffman_table(f)


def _blocks(rng: np.random.Generator, n: int, density: float, scale: float) -> np.ndarray:
    coefs = np.zeros((n, 64), np.int16)
    mask = rng.random((n, 63)) < density * np.linspace(1.5, 0.1, 63)
    coefs[:, 1:] = np.where(mask, np.round(rng.laplace(0, scale, (n, 63))), 0).astype(np.int16)
    coefs[:, 0] = rng.integers(-200, 200, n)
    return coefs


# the layouts' scans and odd ones: overlapping bands with edges anywhere (the first scans of one
# point transform are counted together, by segments of equal band membership), one-position bands
SCANS = sorted({s for lay in progressive.LAYOUTS for s in lay} | {
    (5, 40, 0, 3), (2, 63, 3, 2), (4, 20, 0, 0), (21, 21, 0, 0), (63, 63, 0, 0), (1, 1, 0, 0),
    (15, 63, 0, 0), (1, 5, 0, 1), (6, 63, 0, 1), (30, 31, 0, 1), (1, 1, 0, 2), (2, 62, 0, 2)})


@pytest.mark.parametrize("n, density, scale", [(500, 0.3, 6.0), (300, 0.9, 40.0), (33000, 0.0005, 3.0)])
def test_every_candidate_scan_counts_as_the_written_scan_does(n, density, scale):
    rng = np.random.default_rng(n)
    coefs = _blocks(rng, n, density, scale)
    idx = np.ascontiguousarray(rng.permutation(n)[: n - 7], dtype=np.intp)  # any blocks, any order
    scans = np.asarray(SCANS, dtype=np.int32)
    freq = np.empty((len(SCANS), 256), np.int64)
    bits = _scans.scan_bits(*_scans.nonzeros(coefs, idx), scans, freq, 100)
    for k, scan in enumerate(SCANS):
        want, extra = _kernels.count_progressive(coefs, np.zeros(0, np.int8), np.zeros(1, np.int64), idx,
                                                 *scan)
        assert np.array_equal(freq[k], want[2]), scan
        table = ref.huffman_table(want[2])
        assert bits[k] == int(want[2] @ huffman.code_lengths(table)) + extra + 8 * len(table[1]) + 100


def test_long_end_of_band_runs_and_correction_bits_are_flushed_as_written():
    # 40,000 empty-band blocks (EOBRUN passes 0x7FFF) and blocks of ±2/±3 (correction bits
    # pile up behind the run past the buffer's limit)
    coefs = np.zeros((40000, 64), np.int16)
    coefs[::5, 1:40] = np.where(np.arange(39) % 2, 3, -2)
    idx = np.arange(40000, dtype=np.intp)
    for scan in [(1, 63, 0, 0), (1, 63, 2, 1), (1, 63, 1, 0), (41, 63, 0, 0)]:
        freq = np.empty((1, 256), np.int64)
        _scans.scan_bits(*_scans.nonzeros(coefs, idx), np.asarray([scan], np.int32), freq, 0)
        want, _ = _kernels.count_progressive(coefs, np.zeros(0, np.int8), np.zeros(1, np.int64), idx,
                                             *scan)
        assert np.array_equal(freq[0], want[2]), scan


def test_scan_bits_refuses_what_is_not_an_ac_scan():
    lists = _scans.nonzeros(np.zeros((2, 64), np.int16), np.arange(2, dtype=np.intp))
    for scan in [(0, 0, 0, 0), (5, 4, 0, 0), (1, 64, 0, 0), (1, 63, 0, 14)]:
        with pytest.raises(ValueError):
            _scans.scan_bits(*lists, np.asarray([scan], np.int32), np.empty((1, 256), np.int64), 0)


def test_chroma_spread_is_the_cells_variance():
    rng = np.random.default_rng(5)
    ycc = rng.integers(0, 256, (3, 38, 52), dtype=np.uint8)
    for h, w in [(38, 52), (20, 30), (2, 2)]:
        assert _kernels.cell_spread(ycc, h, w) == pytest.approx(ref.cell_spread(ycc, h, w), rel=1e-12)
    with pytest.raises(ValueError):
        _kernels.cell_spread(ycc, 37, 52)


@pytest.mark.parametrize("v", [1, 2])
def test_fitted_chroma_is_the_oracles_arithmetic(v):
    rng = np.random.default_rng(v)
    for shape in [(64, 96), (6, 10), (v, 2), (2 * v + v, 34)]:
        plane = rng.integers(0, 256, shape, dtype=np.uint8)
        for iterations in (0, 1, 3):
            out = np.empty((shape[0] // v, shape[1] // 2), np.uint8)
            _kernels.downsample_fit(plane, 2, v, iterations, out)
            assert np.array_equal(out, ref.downsample_fit(plane, v, iterations)), (shape, iterations)


@pytest.fixture(scope="module")
def photos(shared_data):
    return [np.asarray(Image.open(shared_data / "kodak" / f"kodim{k:02d}.png").convert("RGB"))[:256, :384]
            for k in (3, 8, 13, 20)]


def test_counted_sizes_are_the_written_ones_to_a_quarter_percent(photos):
    for img in photos:
        for q in (40, 90):
            base = encode(img, quality=q, progressive=False).data
            prog = encode(img, quality=q, progressive=True).data
            counted = {}

            def spy(progressive, frame, base_bits, dcs, acs, layout, counted=counted):
                counted["base"] = (base_bits + progressive_markers(dcs, acs, frame)) // 8 + 1
                counted["prog"] = layout.bytes
                return [False, True]

            real = encoder._structures
            encoder._structures = spy
            try:
                encode(img, quality=q)
            finally:
                encoder._structures = real
            # the files share everything before their first DHT
            head = len(base) - len(base.split(b"\xff\xc4", 1)[1]) - 2
            assert abs((len(base) - len(prog)) - (counted["base"] - counted["prog"])) < 0.0025 * len(base)
            assert abs(counted["prog"] + head + 2 - len(prog)) < 0.01 * len(prog)


def progressive_markers(dcs, acs, frame):
    return progressive.markers_bits(dcs + acs, len(frame.components))


def test_auto_writes_once_when_the_counts_are_sure_and_keeps_the_smaller_file(photos, monkeypatch):
    writes: list[str] = []
    base_write, prog_write = encoder._write, progressive.write
    monkeypatch.setattr(encoder, "_write", lambda *a: writes.append("baseline") or base_write(*a))
    monkeypatch.setattr(progressive, "write", lambda p: writes.append("progressive") or prog_write(p))
    once = 0
    for img in photos:
        for q in (30, 60, 95):
            writes.clear()
            auto = encode(img, quality=q)
            once += len(writes) == 1
            sizes = [len(encode(img, quality=q, progressive=s).data) for s in (False, True)]
            assert len(auto.data) == min(sizes) and auto.progressive == (sizes[1] < sizes[0])
    assert once >= 6, once  # most decisions write one file


def _both_builds():
    from quanta.image.jpeg import _dispatch

    if not _dispatch.portable.cpu_has_avx2():
        # the AVX2 build cannot execute here; test_the_kernels_follow_the_setting checks that the
        # portable build is the one chosen on such a processor
        pytest.skip("this processor has no AVX2, so the AVX2 build cannot run to be compared")
    from quanta.image.jpeg import _kernels_avx2

    return _dispatch.portable, _kernels_avx2


def test_the_avx2_build_is_the_portable_one_bit_for_bit(monkeypatch, photos):
    from quanta.image.jpeg import color, dct, quantize
    from quanta.image.jpeg import entropy as ent

    users = (color, dct, quantize, ent, progressive)
    outputs = []
    for build in _both_builds():
        for mod in users:
            monkeypatch.setattr(mod, "_kernels", build)
        files = []
        for img in photos[:2]:
            for kw in ({}, {"fast": True}, {"quality": 95, "subsampling": "4:4:4"}, {"quality": 20}):
                files.append(encode(img, **kw).data)
            files.append(encode(np.ascontiguousarray(img[:61, :93, 1]), quality=60).data)
        outputs.append(files)
    assert outputs[0] == outputs[1]


def test_the_kernels_follow_the_setting():
    from quanta.image.jpeg import _dispatch

    assert _dispatch.choose("portable") is _dispatch.portable
    chosen = _dispatch.choose("")
    assert (chosen is not _dispatch.portable) == _dispatch.portable.cpu_has_avx2()


def _every_layout(coefs, idx):
    """The exhaustive search: every layout's size from every distinct scan counted."""
    distinct = sorted({s for lay in progressive.LAYOUTS for s in lay})
    freq = np.empty((len(distinct), 256), np.int64)
    bits = _scans.scan_bits(*_scans.nonzeros(coefs, idx), np.asarray(distinct, np.int32), freq,
                            progressive._HEADER_BITS)
    sizes = [sum(int(bits[distinct.index(s)]) for s in lay) for lay in progressive.LAYOUTS]
    best = int(np.argmin(sizes))  # the first smallest
    return progressive.LAYOUTS[best], sizes[best]


def test_the_search_by_depth_chooses_what_the_search_over_every_layout_chooses(photos, monkeypatch):
    calls = []
    real = _scans.scan_bits
    monkeypatch.setattr(_scans, "scan_bits", lambda *a: calls.append(a[3].shape[0]) or real(*a))
    deep = 0
    for img in photos:
        for q in (30, 75, 95):
            fr = encoder._plan(img, q, "4:2:0", "quanta", 0)
            planes = encoder._planes(img, fr, "sharp")
            rows, _ = encoder._scan_rows(planes, fr)
            coefs = encoder._quantize(planes, fr, rows)
            for geo in encoder._geometry(planes, rows, fr):
                idx = geo.index()
                want = _every_layout(coefs, idx)
                calls.clear()
                lay, counts, size = progressive.choose_layout(coefs, idx)
                assert (lay, size) == want
                assert [len(c) for c in counts] == [256] * len(lay)
                deep += max(s[3] for s in lay) == 2
                if max(s[3] for s in lay) == 0:  # point transform 1 lost: 2 was never counted
                    assert len(calls) == 2 and sum(calls) == 13  # 6 first scans at Al 0, 7 at Al 1
    assert deep  # some components here do pay for two bits split off
