"""The orthonormal 8×8 DCT-II of T.81 (A.3.3), applied to whole planes at once.

``F(u,v) = ¼·C(u)·C(v)·ΣΣ f(x,y)·cos((2x+1)uπ/16)·cos((2y+1)vπ/16)`` — the orthonormal 2-D DCT.
The forward transform runs separably, compiled ahead of time (``_kernels.pyx``); the inverse
(for tests and analysis) is one matrix product against ``kron(C, C)`` (64×64).
"""

from __future__ import annotations

import numpy as np

from quanta.image.jpeg._dispatch import kernels as _kernels

_N = np.arange(8)
#: 1-D orthonormal DCT matrix: row k is basis function k.
C8 = (np.sqrt(np.where(_N == 0, 1.0, 2.0) / 8.0)[:, None]
      * np.cos((2 * _N[None, :] + 1) * _N[:, None] * np.pi / 16)).astype(np.float64)
C32 = C8.astype(np.float32)  # the single-precision matrix the compiled transforms use
_K = np.kron(C8, C8).astype(np.float32)  # acts on row-major 8×8 blocks flattened to 64


def split_8x8(plane: np.ndarray) -> np.ndarray:
    """``(H, W)`` (multiples of 8) → ``(H/8 · W/8, 64)`` blocks in raster order, row-major."""
    h, w = plane.shape
    return plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)


def merge_8x8(blocks: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse of :func:`split_8x8`."""
    return blocks.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def forward(plane: np.ndarray) -> np.ndarray:
    """DCT coefficients (float32, ``(blocks, 64)`` natural order, blocks in raster order) of the
    level-shifted samples (``x − 128``) of a uint8 plane whose sides are multiples of 8.

    Separable (rows, then columns), compiled: 1024 multiply-adds per block, one thread (so
    images encode in parallel threads without a BLAS pool fighting over the cores).
    """
    h, w = plane.shape
    out = np.empty(((h // 8) * (w // 8), 64), dtype=np.float32)
    _kernels.forward_dct(np.ascontiguousarray(plane), C32, out)
    return out


def inverse(coefs: np.ndarray) -> np.ndarray:
    """Samples (float32, level shift undone) from natural-order coefficients ``(N, 64)``."""
    return coefs.astype(np.float32) @ _K + 128.0
