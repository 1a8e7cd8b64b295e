"""Plain-Python oracles of the JPEG encoder's compiled passes, written as the standard states
them: Huffman code lengths by Figure K.1's linear scans and K.3's limit, the 2×2 spread of
the chroma, and the fitted chroma's Jacobi steps (numpy, the kernel's float32/double mix)."""

from __future__ import annotations

import numpy as np


def huffman_table(freq: np.ndarray) -> tuple[list[int], list[int]]:
    """T.81 K.2 as libjpeg's ``jpeg_gen_optimal_table``: the two least frequent nodes merged
    (ties: the larger symbol), a reserved symbol 256, lengths limited to 16 (Figure K.3)."""
    f = [int(x) for x in freq] + [1]
    if sum(f[:256]) == 0:
        f[0] = 1
    codesize, others = [0] * 257, [-1] * 257
    while True:
        c1 = c2 = -1
        for i in range(257):
            if f[i] > 0 and (c1 < 0 or f[i] <= f[c1]):
                c1 = i
        for i in range(257):
            if f[i] > 0 and i != c1 and (c2 < 0 or f[i] <= f[c2]):
                c2 = i
        if c2 < 0:
            break
        f[c1] += f[c2]
        f[c2] = 0
        codesize[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            codesize[c1] += 1
        others[c1] = c2
        codesize[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            codesize[c2] += 1
    bits = [0] * 33
    for c in codesize:
        if c:
            bits[c] += 1
    for i in range(32, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1
    vals = sorted((c, s) for s, c in enumerate(codesize[:256]) if c)
    return bits[1:17], [s for _, s in vals]


def cell_spread(ycc: np.ndarray, height: int, width: int) -> float:
    """The mean variance of Cb and Cr inside 2×2 cells (float64)."""
    x = ycc[1:, :height, :width].astype(np.float64)
    cells = np.stack([x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]])
    return float(cells.var(axis=0).mean())


def downsample_fit(plane: np.ndarray, v: int, iterations: int) -> np.ndarray:
    """2×v cells fitted to the decoder's triangle upsampling, with the kernel's arithmetic: box
    averages summed in float32, each step's horizontal filter in double, its vertical blend in
    double rounded to float32, residuals summed in float32 in the cell's raster order."""
    rows, cols = plane.shape[0] // v, plane.shape[1] // 2
    p = plane[:rows * v, :cols * 2].astype(np.float32)
    inv = np.float32(1.0 / (2 * v))
    s = np.zeros((rows, cols), np.float32)
    for a in range(v):
        for b in range(2):
            s = s + p[a::v, b::2]
    d = s * inv
    for _ in range(iterations):
        dd = d.astype(np.float64)
        left = 0.75 * dd + 0.25 * dd[:, np.r_[0, 0:cols - 1]]
        right = 0.75 * dd + 0.25 * dd[:, np.r_[1:cols, cols - 1]]
        res = np.zeros((rows, cols), np.float32)
        for a in range(v):
            for b, hor in enumerate((left, right)):
                if v == 1:
                    up = hor.astype(np.float32)
                else:
                    nb = hor[np.r_[0, 0:rows - 1]] if a == 0 else hor[np.r_[1:rows, rows - 1]]
                    up = (0.75 * hor + 0.25 * nb).astype(np.float32)
                res = res + (p[a::v, b::2] - up)
        d = np.clip(d + res * inv, np.float32(0), np.float32(255)).astype(np.float32)
    return (d + np.float32(0.5)).astype(np.int32).astype(np.uint8)
