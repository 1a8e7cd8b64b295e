"""Uniform grids — the core's answer to *which levels?*

A grid has ``2**bits`` integer codes ``q`` in ``[qmin, qmax]`` and maps them to values
``scale * (q - zero_point)``. Scale and zero point are chosen per tensor, per channel (one pair
per index along ``axis``) or per group (``group_size`` consecutive elements along ``axis``).

Every function here works on numpy arrays and on torch tensors with the same code.

>>> g = Grid(bits=4, granularity="group", axis=1, group_size=32)
>>> qp = choose_qparams(w, g)            # scales shaped (rows, cols // 32)
>>> codes = quantize(w, qp)              # int8 codes in [-8, 7]
>>> w_hat = dequantize(codes, qp)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from quanta.core._backend import ops
from quanta.core._checks import check_bits, check_choice
from quanta.errors import ConfigError

Granularity = Literal["tensor", "channel", "group"]
ScaleMethod = Literal["minmax", "mse", "given"]


@dataclass(frozen=True)
class Grid:
    """A uniform grid of ``2**bits`` levels.

    bits: 1..32 (codes are int8/uint8 up to 8 bits, 16-bit types up to 16, 32-bit types above).
    signed: codes in ``[-2**(bits-1), 2**(bits-1)-1]``, else ``[0, 2**bits-1]``.
    symmetric: the zero point is fixed at :attr:`default_zero_point` and the scale follows the
    largest magnitude; asymmetric grids fit ``[min, max]`` with a zero point of their own.
    granularity: "tensor", "channel" (one scale per index along ``axis``) or "group"
    (``group_size`` consecutive elements along ``axis`` share one scale).
    """

    bits: int = 8
    signed: bool = True
    symmetric: bool = True
    granularity: Granularity = "tensor"
    axis: int = 0
    group_size: int | None = None

    def __post_init__(self) -> None:
        check_bits(self.bits, 1, 32, "grid bits")
        if self.symmetric and self.bits < 2:
            raise ConfigError("a symmetric grid needs at least 2 bits; use symmetric=False")
        check_choice(self.granularity, ("tensor", "channel", "group"), "granularity")
        if self.granularity == "group" and (self.group_size is None or self.group_size < 1):
            raise ConfigError("granularity 'group' needs a positive group_size")

    @property
    def qmin(self) -> int:
        """Smallest code."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        """Largest code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def symmetric_top(self) -> int:
        """The level a symmetric fit puts the largest magnitude on, ``2**(bits-1) − 1``."""
        return (1 << (self.bits - 1)) - 1

    @property
    def levels(self) -> int:
        """Number of codes, ``2**bits``."""
        return 1 << self.bits

    @property
    def default_zero_point(self) -> float:
        """The code that stands for 0.0 unless a zero point is fitted or given: 0 for signed
        codes, the middle code ``2**(bits-1)`` for unsigned ones. The one rule, used by symmetric
        fits and by :meth:`QParams.given` alike."""
        return 0.0 if self.signed else float(1 << (self.bits - 1))


@dataclass(frozen=True)
class QParams:
    """A grid with its chosen scale and zero point.

    ``scale`` and ``zero_point`` have one entry per block: shape ``()`` per tensor, ``(C,)`` per
    channel, and for groups the input's shape with ``axis`` moved last and divided by
    ``group_size`` (a Linear weight ``(out, in)`` grouped along axis 1 gets ``(out, in // G)``).
    ``shape`` is the shape of the array they were chosen for.
    """

    grid: Grid
    scale: Any
    zero_point: Any
    shape: tuple[int, ...] = field(default=())

    @classmethod
    def given(cls, grid: Grid, scale: Any, zero_point: Any = None,
              shape: tuple[int, ...] = ()) -> QParams:
        """Explicit parameters: ``scale`` (and ``zero_point``, default
        :attr:`Grid.default_zero_point`) broadcast to the parameter shape of an input of
        ``shape`` (numpy float64 unless ``scale`` is a float array or a torch tensor)."""
        if scale is None:
            raise ConfigError("given parameters need a scale")
        like = ops(scale).to_float(scale)
        xp = ops(like)
        pshape = param_shape(grid, tuple(shape)) if shape else tuple(like.shape)
        zp = grid.default_zero_point if zero_point is None else zero_point
        return cls(grid, xp.broadcast(like, pshape, like), xp.broadcast(zp, pshape, like), tuple(shape))


# --------------------------------------------------------------------------- block views


def _norm_axis(grid: Grid, ndim: int) -> int:
    if ndim == 0:
        raise ConfigError("cannot choose a per-channel or per-group grid for a 0-d array")
    if not -ndim <= grid.axis < ndim:
        raise ConfigError(f"axis {grid.axis} is out of range for a {ndim}-d array")
    return grid.axis % ndim


def to_blocks(x: Any, grid: Grid) -> Any:
    """View ``x`` as a 2-D array with one row per block (per tensor/channel/group)."""
    xp = ops(x)
    if grid.granularity == "tensor":
        return x.reshape(1, -1)
    ax = _norm_axis(grid, x.ndim)
    if grid.granularity == "channel":
        return xp.moveaxis(x, ax, 0).reshape(x.shape[ax], -1)
    g = grid.group_size
    if x.shape[ax] % g:
        raise ConfigError(
            f"group size {g} does not divide axis {ax} of length {x.shape[ax]} (shape {tuple(x.shape)})")
    return xp.moveaxis(x, ax, -1).reshape(-1, g)


def from_blocks(b: Any, grid: Grid, shape: tuple[int, ...]) -> Any:
    """Inverse of :func:`to_blocks`: restore the original ``shape``."""
    xp = ops(b)
    if grid.granularity == "tensor":
        return b.reshape(shape)
    ax = _norm_axis(grid, len(shape))
    if grid.granularity == "channel":
        moved = (shape[ax], *tuple(s for i, s in enumerate(shape) if i != ax))
        return xp.moveaxis(b.reshape(moved), 0, ax)
    moved = (*tuple(s for i, s in enumerate(shape) if i != ax), shape[ax])
    return xp.moveaxis(b.reshape(moved), -1, ax)


def param_shape(grid: Grid, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the scale/zero-point arrays for an input of ``shape``."""
    if grid.granularity == "tensor":
        return ()
    ax = _norm_axis(grid, len(shape))
    if grid.granularity == "channel":
        return (shape[ax],)
    rest = tuple(s for i, s in enumerate(shape) if i != ax)
    return (*rest, shape[ax] // grid.group_size)


def _as_column(p: Any, like: Any) -> Any:
    return ops(like).asarray(p, like=like).reshape(-1, 1)


# --------------------------------------------------------------------------- choosing scales


def _fit(lo: Any, hi: Any, grid: Grid) -> tuple[Any, Any]:
    """Scale and zero point (columns) so that the grid covers ``[lo, hi]`` per row.

    Scales never fall below the dtype's smallest normal number (so tiny or subnormal blocks
    still divide cleanly); an all-zero block gets scale 1.
    """
    xp = ops(lo)
    tiny = xp.tiny(lo)
    if grid.symmetric:
        amax = xp.where(xp.abs(lo) > xp.abs(hi), xp.abs(lo), xp.abs(hi))
        scale = xp.where(amax > 0, xp.at_least(amax / grid.symmetric_top, tiny), 1.0)
        return scale, scale * 0 + grid.default_zero_point
    span = hi - lo
    mag = xp.abs(lo)
    # A constant block gets scale |c| (or 1 for zeros): c then sits exactly on a level.
    fallback = xp.where(mag > 0, xp.at_least(mag, tiny), 1.0)
    scale = xp.where(span > 0, xp.at_least(span / (grid.qmax - grid.qmin), tiny), fallback)
    zero = grid.qmin - xp.round(lo / scale)
    return scale, zero


def _fake_blocks(b: Any, scale: Any, zero: Any, grid: Grid) -> Any:
    xp = ops(b)
    q = xp.clip(xp.round(b / scale + zero), grid.qmin, grid.qmax)
    return (q - zero) * scale


def choose_qparams(
    x: Any,
    grid: Grid,
    *,
    method: ScaleMethod = "minmax",
    scale: Any = None,
    zero_point: Any = None,
    weights: Any = None,
    clip_ratios: Any = None,
    power: float = 2.0,
) -> QParams:
    """Choose scale and zero point for ``x`` on ``grid``.

    method:
      * "minmax": the grid spans each block's ``[min, max]`` (symmetric: ``max |x|``).
      * "mse": search clipping ratios (default 1.0 down to 0.5 in 51 steps) and keep, per block,
        the one whose fake-quantized error ``sum(weights * |err|**power)`` is smallest.
      * "given": use ``scale`` and ``zero_point`` as passed (broadcast to the parameter shape).
    """
    xp = ops(x)
    xf = xp.to_float(x)
    shape = tuple(x.shape)
    pshape = param_shape(grid, shape)
    check_choice(method, ("minmax", "mse", "given"), "scale method")
    if method == "given":
        if scale is None:
            raise ConfigError("method 'given' needs a scale")
        zp = grid.default_zero_point if zero_point is None else zero_point
        return QParams(grid, xp.broadcast(scale, pshape, xf), xp.broadcast(zp, pshape, xf), shape)
    if xp.numel(xf) == 0:
        raise ConfigError("cannot choose a grid for an empty array")
    b = to_blocks(xf, grid)
    lo, hi = xp.amin(b, 1), xp.amax(b, 1)
    if method == "minmax":
        best_s, best_z = _fit(lo, hi, grid)
    else:  # "mse": compiled where it applies (float32 on the CPU), vectorized elsewhere
        ratios = np.linspace(1.0, 0.5, 51) if clip_ratios is None else np.asarray(clip_ratios)
        found = _compiled_search(b, lo, hi, weights, shape, grid, ratios, power)
        best_s, best_z = found if found is not None else \
            _vectorized_search(xp, xf, b, lo, hi, weights, shape, grid, ratios, power)
    return QParams(grid, best_s.reshape(pshape), best_z.reshape(pshape), shape)


#: elements per slice of the clipping search (a few MB of float32 temporaries)
_SEARCH_ELEMENTS = 1 << 17


#: blocks per call of the compiled search on one thread (a few hundred kB of weights)
_SEARCH_BLOCKS = 4096


def _as_numpy(x: Any) -> np.ndarray | None:
    """``x`` as a C-contiguous float32 numpy array without a copy of a CPU tensor's data (None:
    not float32, or not on the CPU)."""
    if ops(x).name != "numpy":
        if x.device.type != "cpu" or x.requires_grad:
            return None
        x = x.detach().contiguous().numpy()
    return np.ascontiguousarray(x) if x.dtype == np.float32 else None


def _weight_rows(weights: Any, shape: tuple[int, ...], grid: Grid, b: Any) -> np.ndarray | None:
    """The search's weights as rows of the blocks' length: one row per block — or, for groups
    along the last axis of a matrix weighted per column (a row vector, as given or broadcast),
    one row per group column, block ``k`` using row ``k % rows`` (no matrix-sized copy)."""
    xp = ops(b)
    if weights is None:
        return np.zeros((0, b.shape[1]), np.float32)
    w = xp.asarray(weights, like=b)
    if grid.granularity == "group" and len(shape) == 2 and _norm_axis(grid, 2) == 1:
        row = None
        if tuple(w.shape) in ((shape[1],), (1, shape[1])):
            row = w.reshape(-1)
        elif tuple(w.shape) == shape and (w.stride(0) if xp.name != "numpy" else w.strides[0]) == 0:
            row = w[0]
        if row is not None:
            row = _as_numpy(row)
            return None if row is None else row.reshape(-1, grid.group_size)
    return _as_numpy(to_blocks(xp.broadcast(w, shape, b), grid))


def _compiled_search(b: Any, lo: Any, hi: Any, weights: Any, shape: tuple[int, ...], grid: Grid,
                     ratios: np.ndarray, power: float) -> tuple[Any, Any] | None:
    """:func:`_mse_search` compiled (``clip_search.h``: the same float32 arithmetic, the error's
    sum in another order), the blocks split over this process's threads; None where it does
    not apply (not float32 on the CPU) — the vectorized search runs then."""
    bn, lon, hin = _as_numpy(b), _as_numpy(lo), _as_numpy(hi)
    if bn is None or lon is None or hin is None:
        return None
    wt = _weight_rows(weights, shape, grid, b)
    if wt is None:
        return None
    from quanta.core import _kernels
    from quanta.threads import each

    nb = bn.shape[0]
    s_out, z_out = np.empty(nb, np.float32), np.empty(nb, np.float32)
    lon, hin, r32 = lon.reshape(-1), hin.reshape(-1), np.asarray(ratios, np.float32)
    tiny = ops(b).tiny(b)

    def run(a: int) -> None:
        sl = slice(a, a + _SEARCH_BLOCKS)
        _kernels.clip_search(bn[sl], wt, a, lon[sl], hin[sl], r32, grid.symmetric, grid.symmetric_top,
                             grid.qmin, grid.qmax, grid.default_zero_point, tiny, power, s_out[sl], z_out[sl])

    each(run, range(0, nb, _SEARCH_BLOCKS))
    xp = ops(b)
    return xp.asarray(s_out.reshape(-1, 1), like=b), xp.asarray(z_out.reshape(-1, 1), like=b)


def _vectorized_search(xp: Any, xf: Any, b: Any, lo: Any, hi: Any, weights: Any, shape: tuple[int, ...],
                       grid: Grid, ratios: np.ndarray, power: float) -> tuple[Any, Any]:
    """:func:`_mse_search` over the blocks in cache-sized slices: each block's search is
    independent, so the result is the same as over all blocks at once (2–3× faster on a large
    matrix: the temporaries stay in cache)."""
    best_s, best_z = _fit(lo, hi, grid)  # the outputs, each slice's written by its search
    w = None if weights is None else to_blocks(xp.broadcast(weights, shape, xf), grid)
    step = max(1, _SEARCH_ELEMENTS // max(1, b.shape[1]))
    for a in range(0, b.shape[0], step):
        sl = slice(a, a + step)
        best_s[sl], best_z[sl] = _mse_search(xp, b[sl], lo[sl], hi[sl], None if w is None else w[sl],
                                             grid, ratios, power, best_s[sl], best_z[sl])
    return best_s, best_z


def _mse_search(xp: Any, b: Any, lo: Any, hi: Any, w: Any, grid: Grid, ratios: np.ndarray, power: float,
                best_s: Any, best_z: Any) -> tuple[Any, Any]:
    """Per block, the clipping ratio whose fake-quantized error is least (ties: the first) —
    vectorized; the reference of the compiled search (:func:`_compiled_search`)."""
    best_err = None
    for r in ratios:
        s, z = _fit(lo * float(r), hi * float(r), grid)
        err = xp.abs(_fake_blocks(b, s, z, grid) - b) ** power
        if w is not None:
            err = err * w
        err = xp.sum(err, 1)
        if best_err is None:
            best_err, best_s, best_z = err, s, z
            continue
        better = err < best_err
        best_err = xp.where(better, err, best_err)
        best_s = xp.where(better, s, best_s)
        best_z = xp.where(better, z, best_z)
    return best_s, best_z


# --------------------------------------------------------------------------- quantize


#: grids wider than this many bits are rounded in float64 (a 15-bit zero point of 26882 plus
#: ``x/s`` in float32 is off by up to 0.002 of a step, enough to round a half-step case wrong)
WIDE_BITS = 12


def quantize(x: Any, qp: QParams) -> Any:
    """Integer codes of ``x`` on the grid, in the smallest fitting integer dtype."""
    xp = ops(x)
    grid = qp.grid
    b = to_blocks(xp.to_float(x), grid)
    if grid.bits > WIDE_BITS:  # float32's 24-bit mantissa cannot hold x/s + z to a fraction of a step
        b = xp.astype(b, np.float64 if xp.name == "numpy" else xp.torch.float64)
    s, z = _as_column(qp.scale, b), _as_column(qp.zero_point, b)
    q = xp.clip(xp.round(b / s + z), grid.qmin, grid.qmax)
    return from_blocks(xp.astype(q, xp.code_dtype(grid.bits, grid.signed)), grid, tuple(x.shape))


def dequantize(codes: Any, qp: QParams, dtype: Any = None) -> Any:
    """Values ``scale * (codes - zero_point)``; float32 unless ``dtype`` says otherwise."""
    xp = ops(codes)
    grid = qp.grid
    if dtype is None:
        dtype = np.float32 if xp.name == "numpy" else xp.torch.float32
    b = xp.astype(to_blocks(codes, grid), dtype)
    s, z = _as_column(qp.scale, b), _as_column(qp.zero_point, b)
    if codes.dtype != b.dtype and s.dtype == z.dtype == b.dtype:  # b is a fresh copy: in place,
        b -= z  # the same arithmetic without a matrix-sized temporary per step
        b *= s
    else:
        b = (b - z) * s
    return from_blocks(b, grid, tuple(codes.shape))


def fake_quantize(x: Any, qp: QParams) -> Any:
    """``dequantize(quantize(x))`` in one pass, in ``x``'s float dtype, without integer codes
    (grids wider than :data:`WIDE_BITS` rounded in float64, as :func:`quantize` rounds them)."""
    xp = ops(x)
    grid = qp.grid
    b = to_blocks(xp.to_float(x), grid)
    s, z = _as_column(qp.scale, b), _as_column(qp.zero_point, b)
    if grid.bits <= WIDE_BITS:
        return from_blocks(_fake_blocks(b, s, z, grid), grid, tuple(x.shape))
    wide = xp.astype(b, np.float64 if xp.name == "numpy" else xp.torch.float64)
    level = xp.round(wide / _as_column(qp.scale, wide) + _as_column(qp.zero_point, wide))
    q = xp.astype(xp.clip(level, grid.qmin, grid.qmax), b.dtype)
    return from_blocks((q - z) * s, grid, tuple(x.shape))  # the level in float64, the value as dequantize's
