"""Non-uniform codebooks — levels that follow the data instead of a uniform grid.

A codebook is a sorted 1-D array of values; a code is an index into it. ``NF4`` is QLoRA's
4-bit NormalFloat (quantiles of a normal distribution, scaled to [-1, 1], with an exact zero);
``lloyd_max`` fits a codebook to data (1-D k-means, optionally weighted).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quanta.core import _kernels
from quanta.core._backend import is_torch, ops
from quanta.core.grid import Grid, from_blocks, param_shape, to_blocks
from quanta.errors import ConfigError

#: QLoRA's NF4 levels (Dettmers et al., 2023), as published in bitsandbytes.
NF4 = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
], dtype=np.float32)


#: llama.cpp's IQ4_NL levels (``w = d · level``; the extremes are unequal, so a block's scale
#: takes the sign that puts its largest magnitude on −127).
IQ4_NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                  dtype=np.float32)


def _check(codebook: np.ndarray) -> np.ndarray:
    cb = np.asarray(codebook, dtype=np.float64)
    if cb.ndim != 1 or cb.size < 2 or cb.size > 65536:
        raise ConfigError("a codebook must be a 1-D array of 2..65536 values")
    if np.any(np.diff(cb) <= 0):
        raise ConfigError("codebook values must be strictly increasing")
    return cb


def nearest(x: Any, codebook: Any) -> Any:
    """Index of the nearest codebook value for each element (uint8 up to 256 values, else uint16).

    Ties go to the larger value. Works on numpy arrays and torch tensors.
    """
    cb = _check(codebook)
    mids = (cb[1:] + cb[:-1]) / 2
    if is_torch(x):
        import torch

        dt = x.dtype if x.is_floating_point() else torch.float64
        if x.device.type == "cpu":  # numpy's search is several times faster than bucketize here
            xn = x.detach().to(dt).numpy()
            idx = torch.from_numpy(np.searchsorted(mids.astype(xn.dtype), xn, side="right"))
        else:
            idx = torch.bucketize(x, torch.as_tensor(mids, dtype=dt, device=x.device), right=True)
        return idx.to(torch.uint8 if cb.size <= 256 else torch.int32)
    idx = np.searchsorted(mids, np.asarray(x), side="right")
    return idx.astype(np.uint8 if cb.size <= 256 else np.uint16)


def lookup(codes: Any, codebook: Any) -> Any:
    """Codebook values for ``codes`` (float32)."""
    if is_torch(codes):
        import torch

        cb = torch.as_tensor(np.asarray(codebook, dtype=np.float32), device=codes.device)
        return cb[codes.long()]
    return np.asarray(codebook, dtype=np.float32)[np.asarray(codes)]


def absmax_scales(x: Any, grid: Grid) -> Any:
    """Per-block ``max |x|`` (1 where a block is all zeros), shaped like the grid's parameters."""
    xp = ops(x)
    b = to_blocks(xp.to_float(x), grid)
    s = xp.amax(xp.abs(b), 1)
    s = xp.where(s > 0, s, 1.0)
    return s.reshape(param_shape(grid, tuple(x.shape)))


def quantize_scaled(x: Any, codebook: Any, grid: Grid) -> tuple[Any, Any]:
    """Codes of ``x / absmax`` per block on ``codebook`` (values in [-1, 1]); returns (codes, scales)."""
    xp = ops(x)
    scales = absmax_scales(x, grid)
    b = to_blocks(xp.to_float(x), grid) / scales.reshape(-1, 1)
    return from_blocks(nearest(b, codebook), grid, tuple(x.shape)), scales


#: blocks per task of :func:`search_scales` (each is independent: any split gives the same scales)
SCALE_BLOCKS = 4096


def search_scales(x: Any, codebook: Any, grid: Grid, *, weights: Any = None, tries: int = 7) -> Any:
    """Per-block scales ``d`` (torch, signed) for ``x ≈ d · codebook[code]`` with the least
    (weighted) squared error: the block's value of largest magnitude put on the codebook's
    longer end, stretched over ``2·tries + 1`` steps, each candidate's codes scored with the
    least-squares scale they imply (which is the scale kept; 0 for an all-zero block). Compiled:
    one pass per block, the blocks shared out to :func:`quanta.threads.threads` threads."""
    import torch

    from quanta.threads import each

    cbn = _check(codebook)
    b = to_blocks(x.float(), grid).contiguous()
    wt = torch.ones_like(b) if weights is None else to_blocks(weights.float(), grid).contiguous()
    end = cbn[0] if abs(cbn[0]) >= abs(cbn[-1]) else cbn[-1]
    step = float(np.min(np.diff(cbn))) / 2 * float(np.sign(end))
    bn, wn = b.numpy(), wt.numpy()
    d = np.empty(bn.shape[0])

    def run(start: int) -> None:
        stop = start + SCALE_BLOCKS
        d[start:stop] = _kernels.codebook_scales(bn[start:stop], wn[start:stop], cbn, float(end), step,
                                                 int(tries))

    each(run, range(0, bn.shape[0], SCALE_BLOCKS))
    d[(b == 0).all(1).numpy()] = 0.0  # an all-zero block: every code gives zero (no level is 0)
    return torch.from_numpy(d).to(torch.float32).reshape(param_shape(grid, tuple(x.shape)))


def dequantize_scaled(codes: Any, scales: Any, codebook: Any, grid: Grid) -> Any:
    """Inverse of :func:`quantize_scaled` (float32)."""
    b = lookup(to_blocks(codes, grid), codebook) * scales.reshape(-1, 1)
    return from_blocks(b, grid, tuple(codes.shape))


def lloyd_max(
    x: Any,
    levels: int,
    *,
    weights: Any = None,
    iters: int = 500,
    tol: float = 1e-10,
) -> np.ndarray:
    """Fit a sorted codebook of ``levels`` values to the samples ``x`` (1-D k-means).

    Minimises ``sum(weights * (x - codebook[nearest(x)])**2)``. Starts from the data's
    quantiles and stops when the weighted distortion improves by less than ``tol`` (relative).
    Empty cells keep their previous value. Returns float64 values.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if levels < 2:
        raise ConfigError("a codebook needs at least 2 levels")
    if x.size == 0:
        raise ConfigError("cannot fit a codebook to no data")
    w = np.ones_like(x) if weights is None else np.broadcast_to(
        np.asarray(weights, dtype=np.float64).ravel(), x.shape)
    if np.any(w < 0):
        raise ConfigError("weights must be non-negative")
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    cw = np.cumsum(ws)
    cwx = np.cumsum(ws * xs)
    # Initial levels: weighted quantiles at the cell centres.
    targets = (np.arange(levels) + 0.5) / levels * cw[-1]
    cb = xs[np.minimum(np.searchsorted(cw, targets), xs.size - 1)]
    cb = _spread(cb, xs)
    prev = np.inf
    for _ in range(iters):
        mids = (cb[1:] + cb[:-1]) / 2
        edges = np.concatenate(([0], np.searchsorted(xs, mids, side="right"), [xs.size]))
        wsum = np.diff(np.concatenate(([0.0], cw))[edges])
        xsum = np.diff(np.concatenate(([0.0], cwx))[edges])
        cb = np.where(wsum > 0, xsum / np.where(wsum > 0, wsum, 1), cb)
        cb = _spread(np.sort(cb), xs)
        idx = np.searchsorted((cb[1:] + cb[:-1]) / 2, xs, side="right")
        dist = float(np.sum(ws * (xs - cb[idx]) ** 2))
        if np.isfinite(prev) and prev - dist <= tol * max(prev, 1e-300):
            break
        prev = dist
    return cb


def _spread(cb: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Make a codebook strictly increasing (duplicates appear with few distinct samples)."""
    span = max(float(xs[-1] - xs[0]), 1e-12)
    eps = span * 1e-9
    out = cb.copy()
    for i in range(1, out.size):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + eps
    return out
