"""Hessian-aware error feedback — the core's answer to *where does the error go?* for a matrix
that multiplies activations (GPTQ: Frantar, Ashkboos, Hoefler & Alistarh, 2023).

Quantizing the columns of ``W`` (``out × in``) one at a time, the error of column ``j`` is fed
onto the columns not yet quantized, weighted by the inverse Hessian ``H⁻¹`` of the layer's
least-squares objective ``‖W X − Ŵ X‖²`` (``H = XᵀX``): the optimal brain surgeon update

    e_j = (w_j − q(w_j)) / [H⁻¹]_jj,    W[:, k] −= e_j · [H⁻¹]_jk   for k > j,

taken with the upper Cholesky factor of ``H⁻¹`` (numerically stable and exact for this order)
and in lazy blocks of ``block`` columns (the block's own updates in the compiled kernel, the
rest of the matrix once per block as one matrix product), in chunks of :data:`ROWS` rows on
threads (rows never mix: the same codes as one chunk). The grid — each group's scale and
zero point — is fixed before the first column (static groups), so activation order (columns
by decreasing ``H_jj``) needs no permutation at inference.

It is the matrix twin of :func:`quanta.core.feedback.error_feedback_quantize`: there the error
goes through a filter onto the next samples; here through ``H⁻¹`` onto the next columns.
"""

from __future__ import annotations

import numpy as np

from quanta.core import _kernels
from quanta.errors import ConfigError
from quanta.threads import each

#: rows quantized together (each row's columns depend on its own row only): 512 rows of a
#: 2048-wide layer are 8 MB of float64, and chunks run on threads
ROWS = 256


def _inverse_factor(a: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor of ``(A + λI)⁻¹`` with λ = damp · mean(diag A), raised ×10 until
    the matrix is positive definite, computed in place in the Fortran-ordered float64 ``a``
    (symmetric) by LAPACK: Cholesky, inverse from the factor, Cholesky again, each on the lower
    triangle — the strict upper triangle keeps ``A``, so a failed try is restored from it, and
    no second ``n × n`` matrix is ever made. Returns a view of ``a``."""
    from scipy.linalg import lapack

    n = a.shape[0]
    diag = np.diag_indices(n)
    d0 = a[diag].copy()
    lam = damp * float(np.mean(d0))
    for _ in range(6):
        a[diag] = d0 + lam
        c, info = lapack.dpotrf(a, lower=1, overwrite_a=1, clean=0)
        if info == 0:
            c, info = lapack.dpotri(c, lower=1, overwrite_c=1)  # (A + λI)⁻¹, lower triangle
        if info == 0:
            c, info = lapack.dpotrf(c, lower=1, overwrite_a=1, clean=0)
        if info == 0:
            for j in range(1, n):  # the strict upper triangle (A's copy) cleared: L alone
                c[:j, j] = 0.0
            return c.T  # L Lᵀ = (A + λI)⁻¹, so Lᵀ is the upper factor
        for j in range(n - 1):  # the lower triangle rebuilt from the upper one, then more damping
            a[j + 1:, j] = a[j, j + 1:]
        lam = max(lam * 10, 1e-8)
    raise ConfigError("the calibration Hessian is not positive definite even with damping")


def permute_symmetric(a: np.ndarray, perm: np.ndarray, tile: int = 512) -> None:
    """``a[i, j] ← a[perm[i], perm[j]]`` in place for a C-ordered symmetric square ``a``: the
    rows permuted by cycles, the matrix transposed tile by tile (``(P A)ᵀ = A Pᵀ``), the rows
    permuted again — one row and one tile of scratch."""
    n = a.shape[0]

    def rows() -> None:
        seen = np.zeros(n, bool)
        for s in range(n):
            if seen[s] or perm[s] == s:
                continue
            first, i = a[s].copy(), s
            while True:
                seen[i] = True
                j = int(perm[i])
                if j == s:
                    a[i] = first
                    break
                a[i] = a[j]
                i = j

    rows()
    for i0 in range(0, n, tile):
        a[i0:i0 + tile, i0:i0 + tile] = a[i0:i0 + tile, i0:i0 + tile].T.copy()
        for j0 in range(i0 + tile, n, tile):
            t = a[i0:i0 + tile, j0:j0 + tile].copy()
            a[i0:i0 + tile, j0:j0 + tile] = a[j0:j0 + tile, i0:i0 + tile].T
            a[j0:j0 + tile, i0:i0 + tile] = t.T
    rows()


def gptq_quantize(w: np.ndarray, h: np.ndarray, scale: np.ndarray, zero: np.ndarray, *,
                  qmin: int, qmax: int, group_size: int, act_order: bool = True,
                  damp: float = 0.01, block: int = 128, levels: np.ndarray | None = None,
                  h_div: float = 1.0, overwrite_h: bool = False) -> np.ndarray:
    """Integer codes (``uint8``, ``out × in``) of ``w`` on a fixed grid.

    w: ``(out, in)``; h: ``(in, in)`` second moment of the inputs (``XᵀX/n``, or ``XᵀX`` with
    ``h_div = n``: divided here, element by element as it is copied, so that no second
    ``in × in`` matrix is made); scale, zero:
    ``(out, in / group_size)``, the grid of each group of ``group_size`` consecutive inputs
    (``codes = clip(round(w / scale + zero))``). Dead inputs (``H_jj = 0``) quantize to the
    grid's zero. ``damp`` is the relative diagonal damping; ``block`` the lazy-update width.
    levels: a sorted codebook — then the codes index it (``w ≈ scale · levels[code]``; ``zero``,
    ``qmin`` and ``qmax`` unused) and dead inputs take the level nearest zero.

    Memory: ``w`` in activation order, the codes, and one ``in × in`` float64 buffer that becomes
    the inverse factor — ``h`` itself with ``overwrite_h`` (a C-ordered float64 ``h`` the caller
    gives up: permuted and factored in place); the grid is expanded per chunk of rows.
    """
    overwrite_h = overwrite_h and isinstance(h, np.ndarray) and h.dtype == np.float64 \
        and h.flags.c_contiguous and h.flags.writeable
    h = np.asarray(h, dtype=np.float64)  # without overwrite_h: read, never written
    out, n = np.shape(w)
    if h.shape != (n, n) or n % group_size or scale.shape != (out, n // group_size):
        raise ConfigError(f"gptq: shapes do not agree (w {np.shape(w)}, h {h.shape}, scale {scale.shape})")
    diag = np.diag(h) / h_div if h_div != 1.0 else np.diag(h).copy()
    dead = diag <= 0
    diag[dead] = 1.0
    perm = np.argsort(-diag, kind="stable") if act_order else np.arange(n)
    w = np.asarray(w)[:, perm].astype(np.float64, copy=False)  # a copy, in activation order
    dead_at = np.flatnonzero(dead[perm])
    w[:, dead_at] = 0.0

    def permuted() -> np.ndarray:  # H in activation order, dead inputs given a unit diagonal
        if overwrite_h:
            permute_symmetric(h, perm)
            hp = h.T  # symmetric: its Fortran-ordered view is the same matrix
        else:
            hp = np.empty((n, n), order="F")
            ht = hp.T  # C-ordered view: ht[j, i] = hp[i, j] = h[perm[i], perm[j]]
            for j0 in range(0, n, ROWS):
                ht[j0:j0 + ROWS] = h.T[perm[j0:j0 + ROWS]][:, perm]
        if h_div != 1.0:
            hp /= h_div
        hp[dead_at, dead_at] = 1.0
        return hp

    group = perm // group_size
    scale, zero = np.asarray(scale, np.float64), np.asarray(zero, np.float64)
    u = _inverse_factor(permuted(), damp)
    if qmax > 255 or (levels is not None and len(levels) > 256):
        raise ConfigError(f"gptq: codes up to {qmax} do not fit 8 bits")
    codes = np.zeros((out, n), np.uint8)
    diag_blocks = [np.ascontiguousarray(u[i1:i1 + block, i1:i1 + block]) for i1 in range(0, n, block)]

    def rows(r0: int) -> None:  # rows are independent: a chunk's working set stays in cache
        r1 = min(r0 + ROWS, out)
        wr = w[r0:r1].copy()
        s_cols = np.ascontiguousarray(scale[r0:r1][:, group])
        z_cols = np.ascontiguousarray(zero[r0:r1][:, group])
        for k, i1 in enumerate(range(0, n, block)):
            i2 = min(i1 + block, n)
            w1 = np.ascontiguousarray(wr[:, i1:i2])
            err = np.zeros_like(w1)
            c1 = np.zeros_like(w1)
            if levels is None:
                _kernels.gptq_block(w1, diag_blocks[k], s_cols[:, i1:i2], z_cols[:, i1:i2],
                                    float(qmin), float(qmax), c1, err)
            else:
                _kernels.gptq_block_codebook(w1, diag_blocks[k], s_cols[:, i1:i2],
                                             np.asarray(levels, np.float64), c1, err)
            codes[r0:r1, perm[i1:i2]] = c1  # back in the inputs' order
            wr[:, i2:] -= err @ u[i1:i2, i2:]

    each(rows, range(0, out, ROWS))
    return codes
