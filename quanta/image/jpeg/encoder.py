"""The JPEG encoder, staged as libjpeg stages it.

``encode`` is a pipeline of named steps:

1. :func:`_check_image` — refuse what JPEG cannot hold;
2. :func:`_plan` — the frame: one :class:`Component` row per component (id, sampling factors,
   quantization table, Huffman table selector), built once, as ``jcparam.c``'s ``SET_COMP``
   does; everything downstream loops over that table (subsampling "auto" is decided first, by
   :func:`.color.choose_subsampling`);
3. :func:`_planes` — colour conversion and chroma subsampling (box, or fitted to the decoder's
   upsampling); optionally :func:`_design` — tables reshaped to the image (:mod:`.design`);
4. :func:`_quantize` — 8×8 DCT and quantization on the core grid into zigzag MCU order:
   nearest, then the trellis (rate from the previous pass's Huffman code lengths);
5. :func:`_huffman_tables` — optimized (from the symbol statistics) or Annex K.3's;
6. :func:`_write` (baseline: markers and one entropy-coded scan) and/or
   :func:`_write_progressive` (:mod:`.progressive`, its scans planned first); the default
   writes the structure whose counted size is smaller (:func:`_structures`), both when the
   counts are too close to call, and keeps the smaller file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import pairwise

import numpy as np

from quanta.core._checks import check_choice
from quanta.errors import ConfigError, InputError
from quanta.image.jpeg import entropy, huffman, writer
from quanta.image.jpeg import progressive as prog
from quanta.image.jpeg._parallel import run_all, threads_for
from quanta.image.jpeg.color import (
    SUBSAMPLING,
    choose_subsampling,
    downsample,
    downsample_sharp,
    pad_to,
    rgb_to_ycbcr,
)
from quanta.image.jpeg.quantize import Trellis, transform_quantize, transform_trellis
from quanta.image.jpeg.tables import check_table, tables_for

Table = tuple[list[int], list[int]]  # Huffman (BITS, HUFFVAL)

#: Chroma downsamplers: libjpeg's box average, or samples fitted to the decoder's upsampling.
DOWNSAMPLERS = {"box": downsample, "sharp": downsample_sharp}


@dataclass(frozen=True)
class Encoded:
    """The file's bytes and what went into them."""

    data: bytes
    width: int
    height: int
    components: int
    luma_table: np.ndarray
    chroma_table: np.ndarray | None
    progressive: bool = False
    subsampling: str = "gray"

    @property
    def bits_per_pixel(self) -> float:
        """File size in bits per pixel."""
        return 8.0 * len(self.data) / (self.width * self.height)


@dataclass(frozen=True)
class Component:
    """One row of the frame's component table."""

    id: int  # 1 = Y (or gray), 2 = Cb, 3 = Cr
    h: int  # horizontal sampling factor
    v: int  # vertical sampling factor
    qtable: int  # DQT slot (0 luma, 1 chroma)
    htable: int  # Huffman table selector, DC and AC (0 luma, 1 chroma)


@dataclass(frozen=True)
class Frame:
    """Everything fixed before the first pixel is transformed."""

    width: int
    height: int
    components: tuple[Component, ...]
    qtables: tuple[np.ndarray, ...]  # natural order, by DQT slot
    restart_interval: int

    @property
    def gray(self) -> bool:
        return len(self.components) == 1

    @property
    def mcu(self) -> tuple[int, int]:
        """MCU size in pixels (height, width)."""
        c0 = self.components[0]
        return 8 * c0.v, 8 * c0.h

    @property
    def mcus(self) -> tuple[int, int]:
        """MCU rows and columns."""
        mh, mw = self.mcu
        return -(-self.height // mh), -(-self.width // mw)

    @property
    def blocks_per_mcu(self) -> int:
        return sum(c.h * c.v for c in self.components)


#: the largest width or height libjpeg (djpeg, Pillow, browsers) decodes: its JPEG_MAX_DIMENSION;
#: the format's 16-bit fields would allow 65,535, but no common decoder reads such a file
MAX_SIDE = 65500


def check_dimensions(width: int, height: int) -> None:
    """Refuse an image wider or taller than :data:`MAX_SIDE` pixels."""
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(f"{width}×{height} pixels: JPEG decoders (libjpeg's limit) read at most "
                         f"{MAX_SIDE} pixels a side")


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise InputError(f"expected 8-bit samples (uint8), got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise InputError(f"expected (H, W) grayscale or (H, W, 3) RGB, got shape {img.shape}")
    height, width = img.shape[:2]
    if height == 0 or width == 0:
        raise InputError("image has zero size")
    check_dimensions(width, height)
    return img


def _plan(img: np.ndarray, quality: int, subsampling: str,
          tables: str | tuple[np.ndarray, np.ndarray], restart_interval: int,
          scale: float | None = None) -> Frame:
    check_choice(subsampling, SUBSAMPLING, "subsampling")
    if not 0 <= restart_interval <= 65535:
        raise ConfigError("restart interval must be 0..65535 MCUs")
    if isinstance(tables, str):
        luma_t, chroma_t = tables_for(quality, tables, scale=scale)
    else:
        luma_t, chroma_t = check_table(tables[0], "luma table"), check_table(tables[1], "chroma table")
    height, width = img.shape[:2]
    if img.ndim == 2:
        return Frame(width, height, (Component(1, 1, 1, 0, 0),), (luma_t,), restart_interval)
    h, v = SUBSAMPLING[subsampling]
    comps = (Component(1, h, v, 0, 0), Component(2, 1, 1, 1, 1), Component(3, 1, 1, 1, 1))
    return Frame(width, height, comps, (luma_t, chroma_t), restart_interval)


def _padded(frame: Frame) -> tuple[int, int]:
    """The samples of whole MCUs (height, width)."""
    mh, mw = frame.mcu
    return frame.mcus[0] * mh, frame.mcus[1] * mw


def _planes(img: np.ndarray, frame: Frame, chroma: str = "box",
            ycc: np.ndarray | None = None) -> list[np.ndarray]:
    """Each component's padded (and subsampled: ``chroma`` names the downsampler) plane.
    ycc: the image already converted, padded at least as far (edges replicated), if it was."""
    ph, pw = _padded(frame)
    if frame.gray:
        return [pad_to(img, ph, pw)]
    threads = threads_for(ph * pw // 64)
    ycc = rgb_to_ycbcr(img, ph, pw, threads) if ycc is None else ycc[:, :ph, :pw]
    c0 = frame.components[0]
    down = DOWNSAMPLERS[chroma]
    return [ycc[0], *run_all([partial(down, p, c0.h, c0.v) for p in ycc[1:]], threads)]


def _scan_order(grids: list[tuple[int, int]], frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Global block indices and component indices in interleaved MCU order.

    grids: each component's block grid (rows, cols).
    """
    my, mx = frame.mcus
    parts, comps, offset = [], [], 0
    for c, ((rows, cols), comp) in enumerate(zip(grids, frame.components)):
        h, v = (comp.h, comp.v) if not frame.gray else (1, 1)
        r = (np.arange(my)[:, None, None, None] * v + np.arange(v)[None, None, :, None])
        q = (np.arange(mx)[None, :, None, None] * h + np.arange(h)[None, None, None, :])
        idx = offset + r * cols + q  # (my, mx, v, h)
        parts.append(idx.reshape(my, mx, v * h))
        comps.append(np.full((my, mx, v * h), c, dtype=np.int8))
        offset += rows * cols
    return np.concatenate(parts, axis=2).reshape(-1), np.concatenate(comps, axis=2).reshape(-1)


def _scan_rows(planes: list[np.ndarray], frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Each block's row in scan order (blocks numbered component by component, raster order
    within one) and each scan row's component."""
    order, comp = _scan_order([(p.shape[0] // 8, p.shape[1] // 8) for p in planes], frame)
    rows = np.empty_like(order)
    rows[order] = np.arange(order.size)
    return rows, comp


def _strips(plane: np.ndarray, dest: np.ndarray, parts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``parts`` horizontal strips of whole block rows, each with its blocks' destination rows."""
    by, bx = plane.shape[0] // 8, plane.shape[1] // 8
    if parts <= 1:
        return [(plane, dest)]
    cuts = np.linspace(0, by, min(parts, by) + 1).round().astype(int)
    return [(plane[8 * a:8 * b], dest[a * bx:b * bx]) for a, b in pairwise(cuts) if b > a]


def _quantize(planes: list[np.ndarray], frame: Frame, rows: np.ndarray,
              ac_bits: list[np.ndarray] | None = None,
              rules: tuple[Trellis, Trellis] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Quantized zigzag blocks in scan order (int16 ``(N, 64)``): rounded to nearest, or by
    the trellis with each Huffman selector's AC code lengths ``ac_bits``. Large images are cut
    into strips quantized in parallel threads (the kernels release the GIL). ``out``: an
    earlier pass's array to write over (a pass reads only the planes): the trellis pass of a
    large image then touches no new memory."""
    out = np.empty((rows.size, 64), dtype=np.int16) if out is None else out
    work, offset = [], 0
    parts = threads_for(rows.size)
    for p, c in zip(planes, frame.components):
        n = (p.shape[0] // 8) * (p.shape[1] // 8)
        table, dest = frame.qtables[c.qtable], rows[offset:offset + n]
        for strip, strip_dest in _strips(p, dest, parts):
            if ac_bits is None or rules is None:
                work.append(partial(transform_quantize, strip, table, out, strip_dest))
            else:
                work.append(partial(transform_trellis, strip, table, ac_bits[c.htable],
                                    rules[min(c.htable, 1)], out, strip_dest))
        offset += n
    run_all(work, parts)
    return out


def _transform_and_quantize(img: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Quantized zigzag blocks in scan order (int16 ``(N, 64)``) and each block's component."""
    planes = _planes(img, frame)
    rows, comp = _scan_rows(planes, frame)
    return _quantize(planes, frame, rows), comp


def _code_lengths(table: Table, absent: float = 16.0) -> np.ndarray:
    """Bits per symbol of a Huffman table; symbols it lacks cost ``absent``."""
    sizes = huffman.code_lookup(table)[1].astype(np.float32)
    sizes[sizes == 0] = absent
    return sizes


def _selectors(frame: Frame) -> np.ndarray:
    return np.array([c.htable for c in frame.components], dtype=np.int64)


def _huffman_tables(coefs: np.ndarray, comp: np.ndarray, frame: Frame,
                    optimize: bool) -> tuple[list[Table], list[Table], int | None]:
    """DC and AC tables by selector (one each for gray, two for colour), and with ``optimize``
    the baseline scan's exact size in bits with them (before stuffing; else None)."""
    used = 1 if frame.gray else 2
    if not optimize:
        return ([huffman.DC_LUMA, huffman.DC_CHROMA][:used], [huffman.AC_LUMA, huffman.AC_CHROMA][:used],
                None)
    dc_freq, ac_freq, extra = entropy.count(coefs, comp, _selectors(frame), frame.blocks_per_mcu,
                                            frame.restart_interval)
    dcs = [huffman.optimal_table(dc_freq[i]) for i in range(used)]
    acs = [huffman.optimal_table(ac_freq[i]) for i in range(used)]
    bits = extra + sum(int(f[i] @ huffman.code_lengths(t[i])) for f, t in ((dc_freq, dcs), (ac_freq, acs))
                       for i in range(used))
    return dcs, acs, bits


@dataclass(frozen=True)
class Markers:
    """What travels through unchanged: ICC profile, EXIF (orientation included), resolution."""

    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None


def _headers(frame: Frame, markers: Markers, progressive: bool) -> list[bytes]:
    density, unit = writer.density_from_dpi(markers.dpi)
    parts = [writer.SOI, writer.app0_jfif(density, unit)]
    if markers.exif:
        parts.append(writer.app1_exif(markers.exif))
    if markers.icc_profile:
        parts.append(writer.app2_icc(markers.icc_profile))
    comps = [(c.id, c.h, c.v, c.qtable) for c in frame.components]
    return [*parts, writer.dqt(list(frame.qtables)),
            writer.sof0(frame.height, frame.width, comps, progressive)]


def _write(frame: Frame, coefs: np.ndarray, comp: np.ndarray, dcs: list[Table], acs: list[Table],
           markers: Markers) -> bytes:
    lut_codes = np.zeros((4, 256), dtype=np.uint32)
    lut_sizes = np.zeros((4, 256), dtype=np.uint8)
    for row, t in enumerate(dcs + [huffman.DC_LUMA] * (2 - len(dcs)) + acs):
        lut_codes[row], lut_sizes[row] = huffman.code_lookup(t)
    scan = entropy.encode_scan(coefs, comp, _selectors(frame), lut_codes, lut_sizes,
                               frame.blocks_per_mcu, frame.restart_interval)
    parts = _headers(frame, markers, False)
    parts.append(writer.dht([x for i in range(len(dcs)) for x in ((0, i, dcs[i]), (1, i, acs[i]))]))
    if frame.restart_interval:
        parts.append(writer.dri(frame.restart_interval))
    parts += [writer.sos([(c.id, c.htable, c.htable) for c in frame.components]), scan.tobytes(),
              writer.EOI]
    return b"".join(parts)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _geometry(planes: list[np.ndarray], rows: np.ndarray, frame: Frame) -> list[prog.Geometry]:
    """Each component's blocks for non-interleaved scans (T.81 A.2.2: a component's own
    ⌈size·sampling/max⌉ samples, not the MCU padding)."""
    hmax = max(c.h for c in frame.components)
    vmax = max(c.v for c in frame.components)
    out, offset = [], 0
    for p, c in zip(planes, frame.components):
        padded = (p.shape[0] // 8, p.shape[1] // 8)
        n = padded[0] * padded[1]
        coded = (_ceil(_ceil(frame.height * c.v, vmax), 8), _ceil(_ceil(frame.width * c.h, hmax), 8))
        out.append(prog.Geometry(rows[offset:offset + n], padded, coded))
        offset += n
    return out


def _write_progressive(frame: Frame, layout: prog.Plan, markers: Markers) -> bytes:
    return b"".join([*_headers(frame, markers, True), *prog.write(layout), writer.EOI])


#: How much smaller (a fraction of the larger) the sizes counted before writing must show one
#: structure to be for "auto" to write only it: the counts are exact but for the stuffed 0x00
#: after each 0xFF byte of coded data (about 1 byte in 256 of either file) and the padding — on
#: Kodak at q 30–97 the counted difference missed the written one by at most 0.25 %; at 1 %,
#: three files in four are written once.
SURE_MARGIN = 0.01


def _structures(progressive: bool | None, frame: Frame, base_bits: int | None, dcs: list[Table],
                acs: list[Table], layout: prog.Plan | None) -> list[bool]:
    """The structures to write (False: baseline, True: progressive): the one asked for; for
    "auto" the one the counted sizes show smaller by :data:`SURE_MARGIN`, else both (the
    smaller written file is kept)."""
    if progressive is not None:
        return [progressive]
    assert base_bits is not None and layout is not None  # auto implies optimized tables
    base = (base_bits + prog.markers_bits(dcs + acs, len(frame.components))) // 8 + 1
    if abs(base - layout.bytes) > SURE_MARGIN * max(base, layout.bytes):
        return [layout.bytes < base]
    return [False, True]


#: The trellis's settings for luma and chroma in the default (non-``fast``) path, chosen on six
#: Kodak images for BD-rate on SSIMULACRA2, SSIM and PSNR against libjpeg (docs/BENCHMARKS.md);
#: ``masking`` is the adaptive part: busy blocks give up more (SSIMULACRA2 and SSIM gain a
#: little, PSNR loses a little).
TRELLIS = (Trellis(lam=25.0, masking=5000.0), Trellis(lam=40.0, masking=5000.0))
#: The default path's table preset (``fast``: Annex K's).
TABLES = "quanta"
#: The default path's chroma downsampler (``fast``: box).
CHROMA = "sharp"


def encode(
    image: np.ndarray,
    *,
    quality: int = 75,
    subsampling: str = "auto",
    tables: str | tuple[np.ndarray, np.ndarray] | None = None,
    optimize: bool = True,
    restart_interval: int = 0,
    trellis: Trellis | tuple[Trellis, Trellis] | bool | None = None,
    trellis_passes: int = 1,
    progressive: bool | None = None,
    scale: float | None = None,
    chroma: str | None = None,
    optimize_tables: bool = False,
    fast: bool = False,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
) -> Encoded:
    """Encode an 8-bit image as JPEG (baseline or progressive; every decoder reads both).

    image: uint8 ``(H, W)`` grayscale or ``(H, W, 3)`` RGB.
    quality: 1..100, IJG scaling of the tables (ignored for explicit tables).
    subsampling: "4:4:4", "4:2:2", "4:2:0" or "auto" (colour only): 4:4:4 when the chroma has
    more detail than its quantization keeps (:func:`.color.choose_subsampling`), else 4:2:0;
    ``fast``: 4:2:0.
    tables: a preset name (quanta, annexk, flat, imagemagick, klein) or explicit (luma, chroma) tables
    of 64 integers 1..255 in natural order; default :data:`TABLES` (``fast``: ``annexk``).
    optimize: Huffman tables built from the image's statistics (else Annex K.3's; baseline only).
    restart_interval: MCUs between RSTn markers (0: none; baseline only).
    trellis: the rate–distortion rounding of AC coefficients (:class:`Trellis`, or one for luma
    and one for chroma); True or None: :data:`TRELLIS` (``fast``: none); False: nearest.
    trellis_passes: trellis runs, each with the Huffman tables of the previous one's output.
    progressive: True progressive, False baseline, None the smaller of the two (``fast``:
    baseline).
    scale: the tables' scaling in percent (continuous; overrides ``quality``'s IJG scaling).
    chroma: the chroma downsampler, "box" (libjpeg's) or "sharp" (fitted to the decoder's
    triangle upsampling); default :data:`CHROMA` (``fast``: box).
    optimize_tables: reshape the tables to the image, band by band, for least bits + λ·error
    at about the same quality (:mod:`.design`); written in DQT.
    fast: today's libjpeg-like path: Annex K tables, nearest rounding, baseline.
    icc_profile, exif, dpi: carried into APP2, APP1 and the JFIF density (dots per inch).
    """
    img = _check_image(image)
    tables = tables if tables is not None else ("annexk" if fast else TABLES)
    rules = _rules(trellis, fast, optimize)
    if progressive is None:
        progressive = False if fast or restart_interval or not optimize else None
    elif progressive and (restart_interval or not optimize):
        raise ConfigError("progressive files are written with optimized tables and no restart markers")
    ycc = None
    if subsampling == "auto":
        subsampling = "4:2:0"
        if not fast and img.ndim == 3:
            # converted once, padded for 4:2:0 (the largest MCU), shared with the planes
            widest = _plan(img, quality, subsampling, tables, restart_interval, scale)
            ph, pw = _padded(widest)
            ycc = rgb_to_ycbcr(img, ph, pw, threads_for(ph * pw // 64))
            subsampling = choose_subsampling(img, widest.qtables[1], ycc)[0]
    frame = _plan(img, quality, subsampling, tables, restart_interval, scale)
    chroma = chroma if chroma is not None else ("box" if fast else CHROMA)
    check_choice(chroma, DOWNSAMPLERS, "chroma downsampler")
    planes = _planes(img, frame, chroma, ycc)
    if optimize_tables:
        frame = _design(frame, planes)
    rows, comp = _scan_rows(planes, frame)
    coefs = _quantize(planes, frame, rows)
    dcs, acs, base_bits = _huffman_tables(coefs, comp, frame, optimize)
    for _ in range(trellis_passes if rules else 0):
        coefs = _quantize(planes, frame, rows, [_code_lengths(t) for t in acs], rules, out=coefs)
        dcs, acs, base_bits = _huffman_tables(coefs, comp, frame, optimize)
    markers = Markers(icc_profile, exif, dpi)
    layout = prog.plan(coefs, comp, _selectors(frame), [c.id for c in frame.components],
                       _geometry(planes, rows, frame)) if progressive is not False else None
    structures = _structures(progressive, frame, base_bits, dcs, acs, layout)
    files = run_all([partial(_write_progressive, frame, layout, markers) if s
                     else partial(_write, frame, coefs, comp, dcs, acs, markers) for s in structures],
                    threads_for(rows.size))
    best = min(range(len(files)), key=lambda i: len(files[i]))  # auto: the smaller; a tie keeps baseline
    data = files[best]
    return Encoded(data, frame.width, frame.height, len(frame.components), frame.qtables[0],
                   None if frame.gray else frame.qtables[1], structures[best],
                   "gray" if frame.gray else subsampling)


def _design(frame: Frame, planes: list[np.ndarray]) -> Frame:
    """The frame with tables optimized for these planes (luma; the chroma planes together)."""
    from dataclasses import replace

    from quanta.image.jpeg.design import optimize_table

    tables = [optimize_table(planes[:1], frame.qtables[0])]
    if not frame.gray:
        tables.append(optimize_table(planes[1:], frame.qtables[1]))
    return replace(frame, qtables=tuple(tables))


def _rules(trellis: Trellis | tuple[Trellis, Trellis] | bool | None, fast: bool,
           optimize: bool) -> tuple[Trellis, Trellis] | None:
    if trellis is None:
        trellis = not fast and optimize
    if trellis is False:
        return None
    if trellis is True:
        return TRELLIS
    if isinstance(trellis, Trellis):
        return trellis, trellis
    if isinstance(trellis, tuple) and len(trellis) == 2 and all(isinstance(t, Trellis) for t in trellis):
        return trellis
    raise ConfigError("trellis: a Trellis, a (luma, chroma) pair, True or False")
