"""The JPEG encoder: all stages in order, on numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quanta.errors import ConfigError, InputError
from quanta.image.jpeg import dct, entropy, huffman, writer
from quanta.image.jpeg.color import SUBSAMPLING, downsample, pad_to, rgb_to_ycbcr
from quanta.image.jpeg.quantize import quantize_coefs
from quanta.image.jpeg.tables import ZIGZAG, check_table, tables_for


@dataclass(frozen=True)
class Encoded:
    """The file's bytes and what went into them."""

    data: bytes
    width: int
    height: int
    components: int
    luma_table: np.ndarray
    chroma_table: np.ndarray | None

    @property
    def bits_per_pixel(self) -> float:
        return 8.0 * len(self.data) / (self.width * self.height)


def _scan_order(grids: list[tuple[int, int]], factors: list[tuple[int, int]],
                mcus: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Global block indices and component ids in interleaved MCU order.

    grids: each component's block grid (rows, cols); factors: its (h, v) sampling.
    """
    my, mx = mcus
    parts, comps, offset = [], [], 0
    for c, ((rows, cols), (h, v)) in enumerate(zip(grids, factors)):
        r = (np.arange(my)[:, None, None, None] * v + np.arange(v)[None, None, :, None])
        q = (np.arange(mx)[None, :, None, None] * h + np.arange(h)[None, None, None, :])
        idx = offset + r * cols + q  # (my, mx, v, h)
        parts.append(idx.reshape(my, mx, v * h))
        comps.append(np.full((my, mx, v * h), c, dtype=np.int8))
        offset += rows * cols
    order = np.concatenate(parts, axis=2).reshape(-1)
    comp = np.concatenate(comps, axis=2).reshape(-1)
    return order, comp


def encode(
    image: np.ndarray,
    *,
    quality: int = 75,
    subsampling: str = "4:2:0",
    tables: str | tuple[np.ndarray, np.ndarray] = "annexk",
    optimize: bool = True,
    restart_interval: int = 0,
    icc_profile: bytes | None = None,
) -> Encoded:
    """Encode an 8-bit image as baseline JPEG.

    image: uint8 ``(H, W)`` grayscale or ``(H, W, 3)`` RGB.
    quality: 1..100, IJG scaling of the tables (ignored for explicit tables).
    subsampling: "4:4:4", "4:2:2" or "4:2:0" (colour only).
    tables: a preset name (annexk, flat, imagemagick, klein) or explicit (luma, chroma) tables
    of 64 integers 1..255 in natural order.
    optimize: Huffman tables built from the image's symbol statistics (else Annex K.3's).
    restart_interval: MCUs between RSTn markers (0: none).
    """
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
    if height > 65535 or width > 65535:
        raise InputError(f"{width}×{height} exceeds JPEG's 65535-pixel limit")
    if subsampling not in SUBSAMPLING:
        raise ConfigError(f"unknown subsampling {subsampling!r} (4:4:4, 4:2:2 or 4:2:0)")
    if not 0 <= restart_interval <= 65535:
        raise ConfigError("restart interval must be 0..65535 MCUs")
    if isinstance(tables, str):
        luma_t, chroma_t = tables_for(quality, tables)
    else:
        luma_t, chroma_t = check_table(tables[0], "luma table"), check_table(tables[1], "chroma table")

    gray = img.ndim == 2
    h, v = (1, 1) if gray else SUBSAMPLING[subsampling]
    mcu_h, mcu_w = 8 * v, 8 * h
    ph, pw = -(-height // mcu_h) * mcu_h, -(-width // mcu_w) * mcu_w
    if gray:
        planes = [pad_to(img, ph, pw)]
        factors = [(1, 1)]
    else:
        ycc = rgb_to_ycbcr(img)
        planes = [pad_to(ycc[0], ph, pw)] + [downsample(pad_to(p, ph, pw), h, v) for p in ycc[1:]]
        factors = [(h, v), (1, 1), (1, 1)]
    qtabs = [luma_t] if gray else [luma_t, chroma_t, chroma_t]
    codes = [quantize_coefs(dct.forward(p), t)[:, ZIGZAG] for p, t in zip(planes, qtabs)]
    grids = [(p.shape[0] // 8, p.shape[1] // 8) for p in planes]
    order, comp = _scan_order(grids, factors, (ph // mcu_h, pw // mcu_w))
    coefs = np.ascontiguousarray(np.concatenate(codes)[order])
    blocks_per_mcu = sum(f[0] * f[1] for f in factors)
    tbl = np.array([0] if gray else [0, 1, 1], dtype=np.int64)

    if optimize:
        dc_freq, ac_freq = entropy.count_symbols(coefs, comp, tbl, tbl, blocks_per_mcu,
                                                 restart_interval)
        used = 1 if gray else 2
        dcs = [huffman.optimal_table(dc_freq[i]) for i in range(used)]
        acs = [huffman.optimal_table(ac_freq[i]) for i in range(used)]
    else:
        dcs = [huffman.DC_LUMA, huffman.DC_CHROMA][: 1 if gray else 2]
        acs = [huffman.AC_LUMA, huffman.AC_CHROMA][: 1 if gray else 2]
    lut_codes = np.zeros((4, 256), dtype=np.uint32)
    lut_sizes = np.zeros((4, 256), dtype=np.uint8)
    for i, t in enumerate(dcs):
        lut_codes[i], lut_sizes[i] = huffman.code_lookup(t)
    for i, t in enumerate(acs):
        lut_codes[2 + i], lut_sizes[2 + i] = huffman.code_lookup(t)
    scan = entropy.encode_scan(coefs, comp, tbl, tbl, lut_codes, lut_sizes, blocks_per_mcu,
                               restart_interval)

    comps_sof = [(1, *factors[0], 0)] if gray else [(1, h, v, 0), (2, 1, 1, 1), (3, 1, 1, 1)]
    comps_sos = [(1, 0, 0)] if gray else [(1, 0, 0), (2, 1, 1), (3, 1, 1)]
    parts = [writer.SOI, writer.app0_jfif()]
    if icc_profile:
        parts.append(writer.app2_icc(icc_profile))
    parts += [writer.dqt([luma_t] if gray else [luma_t, chroma_t]),
              writer.sof0(height, width, comps_sof),
              writer.dht([x for i in range(len(dcs)) for x in ((0, i, dcs[i]), (1, i, acs[i]))])]
    if restart_interval:
        parts.append(writer.dri(restart_interval))
    parts += [writer.sos(comps_sos), scan.tobytes(), writer.EOI]
    return Encoded(b"".join(parts), width, height, 1 if gray else 3, luma_t,
                   None if gray else chroma_t)

