"""Calibration-free weight quantizers, on the core's grids and codebooks.

Every quantizer takes a 2-D weight ``(out_features, in_features)`` and returns a
:class:`QuantizedWeight`: integer codes plus scales (and zero points) per group of
``group_size`` consecutive inputs (``group_size = in_features``: one group per output row).

* "rtn": round to nearest on a min/max grid (symmetric or asymmetric).
* "mse": the grid's clipping searched per group for the least squared error.
* "hqq": asymmetric grid whose zero point is refined by HQQ's half-quadratic solver
  (Badri & Shaji, 2023): alternate a sparsity-promoting shrinkage of the error (an lp "norm",
  p < 1) with the closed-form zero-point update.
* "nf4": QLoRA's NormalFloat codebook scaled by each group's absolute maximum.

When ``group_size`` does not divide ``in_features`` (SmolLM2's 576 with groups of 128), the
weight is padded with zero columns to the next multiple; :class:`QuantLinear` pads the
activations to match, so every shape stays correct. The padding is counted in the stored bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from quanta.core.codebook import NF4, dequantize_scaled, quantize_scaled
from quanta.core.grid import Grid, QParams, choose_qparams, dequantize, quantize
from quanta.errors import ConfigError

Method = Literal["rtn", "mse", "hqq", "nf4"]
METHODS = ("rtn", "mse", "hqq", "nf4")


@dataclass
class QuantizedWeight:
    """Codes ``(out, in)`` (unsigned: 0..2**bits−1), scales and zero points ``(out, in/G)``.

    The weight is ``scale · (code − zero)`` for grids, ``scale · NF4[code]`` for "nf4".
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    bits: int
    group_size: int
    method: str
    in_features: int = 0  # the true input width (codes may carry zero-padding columns)

    def __post_init__(self) -> None:
        if not self.in_features:
            self.in_features = self.codes.shape[1]

    def dequantize(self) -> torch.Tensor:
        """The ``(out, in_features)`` float32 weight."""
        out, inp = self.codes.shape
        g = self.group_size
        c = self.codes.to(torch.float32).view(out, inp // g, g)
        if self.method == "nf4":
            cb = torch.as_tensor(NF4, dtype=torch.float32)
            w = (cb[self.codes.long()].view(out, inp // g, g) * self.scales[..., None]).view(out, inp)
        else:
            w = ((c - self.zeros[..., None]) * self.scales[..., None]).view(out, inp)
        return w[:, : self.in_features]


def _grid(bits: int, group: int, sym: bool) -> Grid:
    # Codes are stored unsigned; a symmetric grid is centred on 2**(bits-1).
    return Grid(bits=bits, signed=False, symmetric=sym, granularity="group", axis=1, group_size=group)


def check(weight_shape: tuple[int, int], bits: int, group_size: int, method: str, name: str = "") -> int:
    """Validate a request for one layer; returns the effective group size."""
    where = f"layer {name}: " if name else ""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    if method == "nf4" and bits != 4:
        raise ConfigError(f"{where}nf4 is a 4-bit codebook; use --bits 4")
    if not 2 <= bits <= 8:
        raise ConfigError(f"{where}bits must be 2..8, got {bits}")
    k = weight_shape[1]
    g = k if group_size in (0, -1) else group_size
    if g < 1 or g > k:
        raise ConfigError(f"{where}group size {group_size} does not fit in_features {k}")
    return g


def _hqq(w: torch.Tensor, qp: QParams, grid: Grid, iters: int = 20, p: float = 0.7,
         beta: float = 10.0, kappa: float = 1.01) -> torch.Tensor:
    """HQQ zero-point refinement: returns improved zero points (same shape as qp.zero_point).

    Each step rounds on the core grid with the current zero points, shrinks the error
    (generalised soft-thresholding for the lp "norm"), and solves for the zero points in closed
    form; the best zero points seen (by the lp error) are kept.
    """
    out, inp = w.shape
    g = grid.group_size
    wg = w.view(out, inp // g, g)
    s = qp.scale[..., None]
    z = qp.zero_point.clone()
    best_z, best_err = z.clone(), None
    for _ in range(iters):
        step = QParams(grid, qp.scale, z, qp.shape)
        q = quantize(w, step)
        e = (w - dequantize(q, step)).view(out, inp // g, g)
        err = e.abs().pow(p).sum(-1)
        if best_err is None:
            best_err = err
        better = err < best_err
        best_z = torch.where(better, z, best_z)
        best_err = torch.where(better, err, best_err)
        we = torch.sign(e) * torch.relu(e.abs() - (1.0 / beta) * e.abs().clamp_min(1e-8).pow(p - 1))
        z = (q.view(out, inp // g, g).float() - (wg - we) / s).mean(-1)
        beta *= kappa
    return best_z


def quantize_weight(w: torch.Tensor, *, bits: int = 4, group_size: int = 128, method: Method = "rtn",
                    sym: bool = False, name: str = "") -> QuantizedWeight:
    """Quantize one ``(out, in)`` weight."""
    if w.ndim != 2:
        raise ConfigError(f"layer {name}: expected a 2-D weight, got shape {tuple(w.shape)}")
    g = check(tuple(w.shape), bits, group_size, method, name)
    k = w.shape[1]
    wf = w.detach().to(torch.float32)
    if k % g:
        wf = torch.nn.functional.pad(wf, (0, g - k % g))
    if method == "nf4":
        grid = Grid(bits=4, granularity="group", axis=1, group_size=g)
        codes, scales = quantize_scaled(wf, NF4, grid)
        return QuantizedWeight(codes.to(torch.uint8), scales.to(torch.float32), None, 4, g, "nf4", k)
    grid = _grid(bits, g, sym and method != "hqq")
    qp = choose_qparams(wf, grid, method="mse" if method == "mse" else "minmax")
    if method == "hqq":
        z = _hqq(wf, qp, grid)
        qp = QParams(grid, qp.scale, z, qp.shape)
    codes = quantize(wf, qp)
    return QuantizedWeight(codes.to(torch.uint8), qp.scale.to(torch.float32),
                           qp.zero_point.to(torch.float32), bits, g, method, k)


def reference_dequantize(qw: QuantizedWeight) -> torch.Tensor:
    """Dequantize through the core's own functions (the tests' reference)."""
    if qw.method == "nf4":
        grid = Grid(bits=4, granularity="group", axis=1, group_size=qw.group_size)
        return dequantize_scaled(qw.codes, qw.scales, NF4, grid)[:, : qw.in_features]
    grid = _grid(qw.bits, qw.group_size, False)
    qp = QParams(grid, qw.scales, qw.zeros, tuple(qw.codes.shape))
    return dequantize(qw.codes.to(torch.int32), qp)[:, : qw.in_features]


__all__ = ["METHODS", "QuantizedWeight", "check", "quantize_weight", "reference_dequantize"]
