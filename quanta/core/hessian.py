"""Hessian-aware error feedback — the core's answer to *where does the error go?* for a matrix
that multiplies activations (GPTQ: Frantar, Ashkboos, Hoefler & Alistarh, 2023).

Quantizing the columns of ``W`` (``out × in``) one at a time, the error of column ``j`` is fed
onto the columns not yet quantized, weighted by the inverse Hessian ``H⁻¹`` of the layer's
least-squares objective ``‖W X − Ŵ X‖²`` (``H = XᵀX``): the optimal brain surgeon update

    e_j = (w_j − q(w_j)) / [H⁻¹]_jj,    W[:, k] −= e_j · [H⁻¹]_jk   for k > j,

taken with the upper Cholesky factor of ``H⁻¹`` (numerically stable and exact for this order)
and in lazy blocks of ``block`` columns (the block's own updates in the compiled kernel, the
rest of the matrix once per block as one matrix product). The grid — each group's scale and
zero point — is fixed before the first column (static groups), so activation order (columns
by decreasing ``H_jj``) needs no permutation at inference.

It is the matrix twin of :func:`quanta.core.feedback.error_feedback_quantize`: there the error
goes through a filter onto the next samples; here through ``H⁻¹`` onto the next columns.
"""

from __future__ import annotations

import numpy as np

from quanta.core import _kernels
from quanta.errors import ConfigError


def _inverse_factor(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor of ``(H + λI)⁻¹`` with λ = damp · mean(diag H), raised ×10 until
    the matrix is positive definite."""
    n = h.shape[0]
    lam = damp * float(np.mean(np.diag(h)))
    for _ in range(6):
        try:
            low = np.linalg.cholesky(h + lam * np.eye(n))
            inv = np.linalg.inv(low)
            hinv = inv.T @ inv
            return np.linalg.cholesky(hinv).T
        except np.linalg.LinAlgError:
            lam = max(lam * 10, 1e-8)
    raise ConfigError("the calibration Hessian is not positive definite even with damping")


def gptq_quantize(w: np.ndarray, h: np.ndarray, scale: np.ndarray, zero: np.ndarray, *,
                  qmin: int, qmax: int, group_size: int, act_order: bool = True,
                  damp: float = 0.01, block: int = 128, levels: np.ndarray | None = None) -> np.ndarray:
    """Integer codes (float64 array of whole numbers, ``out × in``) of ``w`` on a fixed grid.

    w: ``(out, in)``; h: ``(in, in)`` second moment of the inputs (``XᵀX/n``); scale, zero:
    ``(out, in / group_size)``, the grid of each group of ``group_size`` consecutive inputs
    (``codes = clip(round(w / scale + zero))``). Dead inputs (``H_jj = 0``) quantize to the
    grid's zero. ``damp`` is the relative diagonal damping; ``block`` the lazy-update width.
    levels: a sorted codebook — then the codes index it (``w ≈ scale · levels[code]``; ``zero``,
    ``qmin`` and ``qmax`` unused) and dead inputs take the level nearest zero.
    """
    w = np.array(w, dtype=np.float64)
    h = np.array(h, dtype=np.float64)
    out, n = w.shape
    if h.shape != (n, n) or n % group_size or scale.shape != (out, n // group_size):
        raise ConfigError(f"gptq: shapes do not agree (w {w.shape}, h {h.shape}, scale {scale.shape})")
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(n)
    w, h = w[:, perm], h[np.ix_(perm, perm)]
    group = perm // group_size
    s_cols = np.ascontiguousarray(np.asarray(scale, np.float64)[:, group])
    z_cols = np.ascontiguousarray(np.asarray(zero, np.float64)[:, group])
    u = _inverse_factor(h, damp)
    codes = np.zeros_like(w)
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        w1 = np.ascontiguousarray(w[:, i1:i2])
        err = np.zeros_like(w1)
        c1 = np.zeros_like(w1)
        if levels is None:
            _kernels.gptq_block(w1, np.ascontiguousarray(u[i1:i2, i1:i2]), s_cols[:, i1:i2], z_cols[:, i1:i2],
                   float(qmin), float(qmax), c1, err)
        else:
            _kernels.gptq_block_codebook(w1, np.ascontiguousarray(u[i1:i2, i1:i2]), s_cols[:, i1:i2],
                            np.asarray(levels, np.float64), c1, err)
        codes[:, i1:i2] = c1
        w[:, i2:] -= err @ u[i1:i2, i2:]
    inv = np.empty_like(perm)
    inv[perm] = np.arange(n)
    return codes[:, inv]
