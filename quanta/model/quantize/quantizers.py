"""Weight quantizers as registered strategies (after gguf-py's type registry and quanto's
injected optimizers).

A quantizer is a :class:`WeightQuantizer` subclass registered by name in one line::

    class HQQ(WeightQuantizer, name="hqq"): ...

It turns a 2-D weight ``(out_features, in_features)`` into a :class:`QuantizedWeight`: integer
codes plus scales (and zero points) per group of ``group_size`` consecutive inputs
(``group_size`` 0 or -1: one group per output row). A quantizer that wants calibration data sets
``needs_calibration`` and receives the layer's :class:`LayerStats` (mean squared input per
channel and, with ``needs_hessian``, the input's second-moment matrix ``XᵀX/n``).

Registered here:

* "rtn": round to nearest on a min/max grid (symmetric or asymmetric).
* "mse": the grid's clipping searched per group for the least squared error.
* "hqq": asymmetric grid whose zero point is refined by HQQ's half-quadratic solver
  (Badri & Shaji, 2023): alternate a sparsity-promoting shrinkage of the error (an lp "norm",
  p < 1) with the closed-form zero-point update.
* "nf4": QLoRA's NormalFloat codebook scaled by each group's absolute maximum.
* "imatrix" (calibrated): the clipping search of "mse", each input weighted by its mean squared
  activation.
* "gptq" (calibrated): the grid fixed first (clipping searched with the importance weights),
  then rounding with Hessian-aware error feedback (:mod:`quanta.core.hessian`), then each
  group's scale (and a GGML asymmetric type's offset) refitted to the codes for the least output
  error — not on a super-block type, whose scales are factors of one ``d``.
* "awq", "awq+gptq" (calibrated): activation-aware input scales per group of layers
  (:mod:`quanta.model.quantize.awq`, run by the engine before each block), then "imatrix" or "gptq".

With ``storage=`` a GGML block type (:mod:`quanta.model.formats.weight`), the grid's scales are
those the file can hold (float16); for a codebook type (IQ4_NL) "rtn", "mse", "imatrix" and
"gptq" round onto its levels, each group's scale searched (:func:`quanta.core.codebook.search_scales`).

Every weight dequantizes through the core (:func:`dequantize_codes`: ``core.grid.dequantize``
or ``core.codebook.dequantize_scaled``). When ``group_size`` does not divide ``in_features``
(SmolLM2's 576 with groups of 128), the weight is padded with zero columns to the next multiple;
:class:`~quanta.model.runtime.qlinear.QuantLinear` pads the activations to match. The padding is counted
in the stored bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from quanta.core._checks import check_bits, check_choice, check_finite_array
from quanta.core.codebook import NF4 as NF4_LEVELS
from quanta.core.codebook import dequantize_scaled, quantize_scaled
from quanta.core.grid import Grid, QParams, choose_qparams, dequantize, quantize
from quanta.errors import ConfigError
from quanta.model.formats.weight import (
    AUTO_GROUPS,
    BLOCK_TYPES,
    WeightFormat,
    auto_group,
    grid_format,
    weight_grid,
)
from quanta.model.quantize import cost
from quanta.model.quantize.methods import METHODS

#: rows quantized at once: larger matrices (a token embedding) go in slices of this many rows
#: (defined beside the cost model, which prices GPTQ's buffers for that many rows)
ROW_CHUNK = cost.ROW_CHUNK

#: name → quantizer class, filled by ``class X(WeightQuantizer, name="x")``
QUANTIZERS: dict[str, type[WeightQuantizer]] = {}


def methods() -> tuple[str, ...]:
    """Registered quantizer names (the CLI's ``--method`` choices), in registration order."""
    return tuple(QUANTIZERS)


#: input rows summed in one float32 product ``XᵀX`` before it is added to the Hessian's sums
#: (8 windows of 256 tokens; one product per window cost more in additions than in products)
HESSIAN_ROWS = 2048
#: rows of ``XᵀX`` made per matrix product when the gathered rows are summed (each product row
#: is the same dot products as in one whole product: the same sums, tested)
XTX_ROWS = 1024


@dataclass
class LayerStats:
    """Calibration statistics of one Linear layer's input, accumulated row by row.

    n: rows (tokens) seen; sum_sq: ``Σ x²`` per input channel; xtx: ``Σ x xᵀ`` (``(in, in)``,
    in ``dtype``, only when the quantizer asked for a Hessian).
    """

    in_features: int
    with_hessian: bool = False
    n: int = 0
    sum_sq: torch.Tensor = field(default=None)  # type: ignore[assignment]
    xtx: torch.Tensor | None = None
    dtype: torch.dtype = torch.float64  # of the sums (float32 halves the Hessian's memory)
    #: the layers still to be quantized from these sums (counted by the engine; 0: not counted)
    users: int = 0
    _pending: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.sum_sq = torch.zeros(self.in_features, dtype=torch.float64)
        if self.with_hessian:
            self.xtx = torch.zeros(self.in_features, self.in_features, dtype=self.dtype)

    def add(self, x: torch.Tensor) -> None:
        """Accumulate a batch of inputs ``(..., in_features)`` (for the Hessian, rows are
        gathered up to :data:`HESSIAN_ROWS` and summed in one product: :meth:`flush`)."""
        x2 = x.detach().reshape(-1, self.in_features).to(torch.float32, copy=True)
        self.n += x2.shape[0]
        self.sum_sq += (x2 * x2).sum(0, dtype=torch.float64)
        if self.xtx is not None:
            self._pending.append(x2)
            if sum(p.shape[0] for p in self._pending) >= HESSIAN_ROWS:
                self.flush()

    def flush(self) -> None:
        """Add the gathered rows' float32 products ``XᵀX`` to the sums (in ``dtype``), a slice of
        :data:`XTX_ROWS` rows of the product at a time (8192 inputs: 100 MB of temporaries, not
        805 MB)."""
        if self._pending:
            x2 = torch.cat(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            with torch.inference_mode(self.xtx.is_inference()):  # sums made in inference mode stay so
                for a in range(0, self.in_features, XTX_ROWS):  # the same products, in row slices:
                    b = a + XTX_ROWS  # no whole n × n float32 and float64 temporaries
                    self.xtx[a:b] += (x2[:, a:b].t() @ x2).to(self.dtype)

    def take_hessian(self) -> torch.Tensor | None:
        """For the last of the layers that share these sums (:attr:`users`): the float64 sums
        ``XᵀX`` themselves, handed over to be overwritten (GPTQ factors in place: no second
        ``in × in`` matrix); the statistics keep no Hessian after. None while other layers still
        need them, or when nobody counted the users."""
        self.flush()
        if self.users > 1:
            self.users -= 1
            return None
        if self.users != 1 or self.xtx is None or self.xtx.dtype != torch.float64:
            return None
        h, self.xtx, self.users = self.xtx, None, 0
        return h

    @property
    def mean_sq(self) -> torch.Tensor:
        """Mean squared input per channel (llama.cpp's importance-matrix diagonal)."""
        return self.sum_sq / max(self.n, 1)

    @property
    def hessian(self) -> torch.Tensor:
        """``XᵀX / n`` (the layer-wise least-squares Hessian, up to a factor 2)."""
        if self.xtx is None:
            raise ConfigError("these statistics were gathered without the Hessian")
        self.flush()
        return self.xtx / max(self.n, 1)


@dataclass
class QuantizedWeight:
    """Codes ``(out, in)`` (unsigned: 0..2**bits−1), scales and zero points ``(out, in/G)``.

    The weight is ``scale · (code − zero)`` on a grid, ``scale · codebook[code]`` with a codebook.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    bits: int
    group_size: int
    method: str
    in_features: int = 0  # the true input width (codes may carry zero-padding columns)
    codebook: np.ndarray | None = None
    sym: bool = False  # a symmetric grid: every zero point is default_zero(bits)

    def __post_init__(self) -> None:
        if not self.in_features:
            self.in_features = self.codes.shape[1]

    def dequantize(self) -> torch.Tensor:
        """The ``(out, in_features)`` float32 weight."""
        return dequantize_codes(self.codes, self.scales, self.zeros, bits=self.bits,
                                group_size=self.group_size, codebook=self.codebook)[:, : self.in_features]


def dequantize_codes(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, *,
                     bits: int, group_size: int, codebook: np.ndarray | None = None) -> torch.Tensor:
    """The one dequantizer of model weights (padded width), through the core, float32."""
    grid = weight_grid(bits, group_size, symmetric=False)
    if codebook is not None:
        return dequantize_scaled(codes, scales.float(), codebook, grid)
    qp = QParams(grid, scales.float(), zeros.float(), tuple(codes.shape))
    return dequantize(codes, qp)


class WeightQuantizer:
    """Base of every weight quantizer: validates the request, pads, and dispatches.

    Subclasses set ``name`` (by ``class X(WeightQuantizer, name="x")``), which brings their
    traits — ``needs_calibration``, ``needs_hessian``, the bit range, … — from
    :data:`quanta.model.quantize.methods.METHODS`; optionally a ``codebook``; and implement
    :meth:`quantize_padded`.
    """

    name: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = False
    needs_hessian: ClassVar[bool] = False
    codebook: ClassVar[np.ndarray | None] = None
    min_bits: ClassVar[int] = 2
    max_bits: ClassVar[int] = 8
    summary: ClassVar[str] = ""
    takes_levels: ClassVar[bool] = False  # can round onto a storage type's codebook (IQ4_NL)
    scales_activations: ClassVar[bool] = False  # AWQ: input scales chosen per block first

    def __init_subclass__(cls, name: str | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if name:
            if name in QUANTIZERS and QUANTIZERS[name].__qualname__ != cls.__qualname__:
                raise ConfigError(f"a quantizer named {name!r} is already registered")
            if name not in METHODS:
                raise ConfigError(f"quantizer {name!r} has no row in quanta.model.quantize.methods.METHODS")
            cls.name = name
            for trait, value in vars(METHODS[name]).items():  # the traits from the one table
                if trait != "name":
                    setattr(cls, trait, value)
            QUANTIZERS[name] = cls

    def __init__(self, fmt: WeightFormat) -> None:
        #: the storage format this method rounds onto (what is stored, apart from how it is rounded)
        self.format = fmt
        self.bits = check_bits(fmt.bits, self.min_bits, self.max_bits, f"{self.name} bits")
        #: inputs per group; 0 or -1: one group per row; None: per layer, the largest of 128,
        #: 64 and 32 that divides its inputs (no padding), else 128
        self.group_size = None if fmt.group_size is None else int(fmt.group_size)
        self.sym = bool(fmt.sym)
        storage = fmt.ggml
        if (storage or fmt.levels) is not None and self.codebook is not None:
            raise ConfigError(f"{self.name} is a codebook; it has no GGML block type")
        #: a GGML block type ("Q4_1", ...) whose float16 scales the grid must use, or None
        self.storage = storage
        #: the codebook (IQ4_NL's) of the storage type or of a folder's codebook grid, which
        #: then replaces the uniform grid
        self.levels = _storage_levels(storage or fmt.levels)
        if self.levels is not None and not self.takes_levels:
            raise ConfigError(f"method {self.name!r} cannot write {fmt.label} (a codebook grid); "
                              "use rtn, mse, imatrix or gptq")
        #: a lattice type ("IQ3_S", …) whose grid points the weights' vectors are rounded onto
        self.lattice = storage if storage and BLOCK_TYPES[storage].lattice else None
        if self.lattice and not self.takes_levels:
            raise ConfigError(f"method {self.name!r} cannot write {fmt.label} (a lattice type); "
                              "use rtn, mse, imatrix or gptq")

    def stored(self, qp: QParams, w: torch.Tensor | None = None,
               weights: torch.Tensor | None = None) -> QParams:
        """``qp`` as the storage format keeps it (float16 scales for GGML types); given the
        weights ``w`` (and per-input ``weights`` of their error), a super-block type's group
        factors are then refined on its grid for the least error."""
        if not self.storage:
            return qp
        from quanta.model.formats.weight import storage_grid

        s, z = storage_grid(qp.scale, qp.zero_point, self.storage, w,
                            None if weights is None or w is None else weights.expand_as(w))
        return QParams(qp.grid, s, z, qp.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bits={self.bits}, group_size={self.group_size}, sym={self.sym})"

    def group_for(self, in_features: int, name: str = "") -> int:
        """The effective group size for a layer with ``in_features`` inputs."""
        if self.storage:
            t = BLOCK_TYPES[self.storage]
            if not t.fits(in_features):
                where = f"layer {name}: " if name else ""
                raise ConfigError(f"{where}{t.name} needs rows of a multiple of {t.block} weights; "
                                  f"this one has {in_features}")
            return t.group
        if self.group_size is None:
            return auto_group(in_features)
        g = in_features if self.group_size in (0, -1) else self.group_size
        if g < 1 or g > in_features:
            where = f"layer {name}: " if name else ""
            raise ConfigError(f"{where}group size {self.group_size} does not fit in_features {in_features}")
        return g

    def quantize(self, w: torch.Tensor, *, stats: LayerStats | None = None,
                 name: str = "") -> QuantizedWeight:
        """Quantize one ``(out, in)`` weight (``stats``: its calibration statistics)."""
        where = f"layer {name}" if name else "weight"
        if w.ndim != 2:
            raise ConfigError(f"{where}: expected a 2-D weight, got shape {tuple(w.shape)}")
        check_finite_array(w, where)
        if self.needs_calibration and stats is None:
            raise ConfigError(f"{where}: method {self.name!r} needs calibration data")
        k = w.shape[1]
        g = self.group_for(k, name)
        wf = w.detach().to(torch.float32)
        if k % g:
            wf = torch.nn.functional.pad(wf, (0, g - k % g))
        if wf.shape[0] <= ROW_CHUNK:
            return self._padded(wf, g, k, stats)
        # rows are independent (their own scales; GPTQ's feedback runs along a row): a large
        # matrix — a token embedding — is quantized in slices of rows, its peak memory bounded
        if stats is not None and stats.users:  # each slice is one more use of shared sums
            stats.users += (wf.shape[0] - 1) // ROW_CHUNK
        parts = [self._padded(wf[i:i + ROW_CHUNK], g, k, stats)
                 for i in range(0, wf.shape[0], ROW_CHUNK)]
        first = parts[0]
        return QuantizedWeight(torch.cat([q.codes for q in parts]), torch.cat([q.scales for q in parts]),
                               None if first.zeros is None else torch.cat([q.zeros for q in parts]),
                               first.bits, first.group_size, first.method, first.in_features, first.codebook,
                               first.sym)

    def quantize_padded(self, w: torch.Tensor, group_size: int, in_features: int,
                        stats: LayerStats | None) -> QuantizedWeight:
        """Quantize a weight whose width is a multiple of ``group_size``."""
        raise NotImplementedError

    def _padded(self, w: torch.Tensor, group_size: int, in_features: int,
                stats: LayerStats | None) -> QuantizedWeight:
        return self._on_lattice(w, group_size, in_features, stats) if self.lattice else \
            self.quantize_padded(w, group_size, in_features, stats)

    def _on_lattice(self, w: torch.Tensor, group_size: int, in_features: int,
                    stats: LayerStats | None) -> QuantizedWeight:
        """Quantize onto a lattice type's grid points (:func:`quanta.model.formats.lattice.quantize`):
        each sub-block's scale and each vector's point searched for the least squared error —
        weighted by the importance matrix's diagonal for a calibrated method (GPTQ's Hessian is
        then not used: its sums are released as GPTQ would release them)."""
        from quanta.model.formats import lattice

        imp = None
        if self.needs_calibration and stats is not None:
            imp = importance(stats.mean_sq, w.shape[1]).numpy()
            if self.needs_hessian:
                stats.take_hessian()
        return self._lattice_weight(*lattice.quantize(w.numpy(), self.lattice, imp), group_size, in_features)

    def _lattice_weight(self, codes: np.ndarray, scales: np.ndarray, group_size: int,
                        in_features: int) -> QuantizedWeight:
        """A lattice type's codes (indices into its signed levels) and sub-block scales as a weight."""
        from quanta.model.formats import lattice

        return QuantizedWeight(torch.from_numpy(codes), torch.from_numpy(scales), None, 4, group_size,
                               self.name, in_features, lattice.codebook(self.lattice), sym=True)

    def _on_levels(self, w: torch.Tensor, group_size: int, in_features: int,
                   importance: torch.Tensor | None = None,
                   hessian: torch.Tensor | None = None, h_div: float = 1.0,
                   overwrite_h: bool = False) -> QuantizedWeight:
        """Quantize onto the storage type's codebook: per-group scales searched for the least
        (importance-weighted) error, then nearest levels — or GPTQ's rounding with ``hessian``."""
        from quanta.core.codebook import nearest, search_scales
        from quanta.core.grid import from_blocks, to_blocks

        grid = Grid(bits=4, granularity="group", axis=1, group_size=group_size)
        imp = None if importance is None else importance.expand_as(w)
        d, _ = self.stored_scales(search_scales(w, self.levels, grid, weights=imp))
        if hessian is None:
            b = to_blocks(w, grid) / d.reshape(-1, 1)
            codes = from_blocks(nearest(b, self.levels), grid, tuple(w.shape))
        else:
            from quanta.core.hessian import gptq_quantize, refit_scales

            hn = hessian.numpy()
            codes = torch.from_numpy(gptq_quantize(
                w.numpy(), hn, d.double().numpy(), torch.zeros_like(d).double().numpy(),
                qmin=0, qmax=len(self.levels) - 1, group_size=group_size, act_order=self.act_order,
                damp=self.damp, levels=self.levels, h_div=h_div, overwrite_h=overwrite_h,
                restore_h=not self._on_super_grid()))
            if not self._on_super_grid():
                s, _ = refit_scales(w.numpy(), hn, np.asarray(self.levels, np.float32)[codes.numpy()],
                                    group_size, d.double().numpy(), damp=self.damp)
                s = torch.from_numpy(s).to(torch.float32)
                d, _ = self.stored_scales(torch.where(torch.isfinite(s) & (s != 0), s, d))
        return QuantizedWeight(codes.to(torch.uint8), d.to(torch.float32), None, 4, group_size, self.name,
                               in_features, np.asarray(self.levels, np.float32))

    def stored_scales(self, scale: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Signed codebook scales as the file keeps them (float16, never zero)."""
        from quanta.model.formats.weight import storage_grid

        return storage_grid(scale, None, self.format.codebook_type)

    def _on_super_grid(self) -> bool:
        """Whether the storage is a super-block type (its scales are integer factors of a
        float16 ``d``: :mod:`quanta.model.formats.kquant`)."""
        return bool(self.storage) and BLOCK_TYPES[self.storage].factors is not None

    def _on_grid(self, w: torch.Tensor, qp: QParams, in_features: int) -> QuantizedWeight:
        codes = quantize(w, qp)
        return QuantizedWeight(codes.to(torch.uint8), qp.scale.to(torch.float32),
                               qp.zero_point.to(torch.float32), self.bits, qp.grid.group_size,
                               self.name, in_features, sym=qp.grid.symmetric)


class RTN(WeightQuantizer, name="rtn"):
    """Round to nearest on each group's min/max grid."""

    scale_method: ClassVar[str] = "minmax"


    def quantize_padded(self, w, group_size, in_features, stats):
        if self.levels is not None:
            return self._on_levels(w, group_size, in_features)
        qp = choose_qparams(w, weight_grid(self.bits, group_size, self.sym), method=self.scale_method)
        return self._on_grid(w, self.stored(qp, w), in_features)


class MSEClip(RTN, name="mse"):
    """Round to nearest after searching each group's clipping for the least squared error."""

    scale_method = "mse"


class HQQ(WeightQuantizer, name="hqq"):
    """Asymmetric grid with HQQ's half-quadratic zero-point refinement (always asymmetric)."""

    iters: ClassVar[int] = 20

    def quantize_padded(self, w, group_size, in_features, stats):
        grid = weight_grid(self.bits, group_size, symmetric=False)
        qp = choose_qparams(w, grid)
        qp = QParams(grid, qp.scale, hqq_zero_points(w, qp, iters=self.iters), qp.shape)
        return self._on_grid(w, self.stored(qp), in_features)


class NF4(WeightQuantizer, name="nf4"):
    """QLoRA's NormalFloat4 codebook, scaled by each group's absolute maximum (4 bits only)."""

    codebook = NF4_LEVELS

    def quantize_padded(self, w, group_size, in_features, stats):
        grid = Grid(bits=4, granularity="group", axis=1, group_size=group_size)
        codes, scales = quantize_scaled(w, self.codebook, grid)
        return QuantizedWeight(codes.to(torch.uint8), scales.to(torch.float32), None, 4, group_size,
                               self.name, in_features, self.codebook)


class IMatrix(WeightQuantizer, name="imatrix"):
    """Round to nearest on grids chosen for the least *importance-weighted* squared error: each
    input channel weighted by its mean squared activation on the calibration data (the diagonal
    of llama.cpp's importance matrix). Seconds, not minutes."""

    #: the clipping ratios searched (None: the core's default, 1.0 down to 0.5 in 51 steps)
    clip_ratios: ClassVar[Any] = None


    def quantize_padded(self, w, group_size, in_features, stats):
        imp = importance(stats.mean_sq, w.shape[1])
        if self.levels is not None:
            return self._on_levels(w, group_size, in_features, importance=imp)
        qp = choose_qparams(w, weight_grid(self.bits, group_size, self.sym), method="mse",
                            weights=imp.expand_as(w), clip_ratios=self.clip_ratios)
        return self._on_grid(w, self.stored(qp, w, imp), in_features)


class GPTQ(WeightQuantizer, name="gptq"):
    """GPTQ: each group's grid fixed first (clipping searched for the least error weighted by
    the Hessian's diagonal — the importance matrix), then columns rounded in activation order
    with their error fed onto the rest through the calibration Hessian (static groups), then
    the grid refitted to the codes (:func:`quanta.core.hessian.refit_scales`; 4–13 % less output
    error on SmolLM2's layers at 5 and 8 bits)."""

    scale_method: ClassVar[str] = "weighted"  # or "minmax": each group's min and max
    damp: ClassVar[float] = 0.01
    act_order: ClassVar[bool] = True


    def quantize_padded(self, w, group_size, in_features, stats):
        from quanta.core.hessian import gptq_quantize

        grid = weight_grid(self.bits, group_size, self.sym)
        owned = stats.take_hessian()  # the sums themselves, when no other layer needs them
        xtx = owned if owned is not None else stats.xtx
        h, div = xtx.to(torch.float64), float(max(stats.n, 1))  # divided by n as GPTQ copies it
        if in_features < w.shape[1]:  # padding columns are dead inputs
            pad = (0, w.shape[1] - in_features, 0, w.shape[1] - in_features)
            h, div, owned = torch.nn.functional.pad(h / div, pad), 1.0, h  # a new matrix: ours to overwrite
        imp = importance(stats.mean_sq, w.shape[1])  # the Hessian's diagonal
        if self.levels is not None:
            return self._on_levels(w, group_size, in_features, importance=imp, hessian=h, h_div=div,
                                   overwrite_h=owned is not None)
        if self.scale_method == "minmax":
            qp = self.stored(choose_qparams(w, grid, method="minmax"))
        else:  # clipping searched for the least error weighted by the Hessian's diagonal
            qp = self.stored(choose_qparams(w, grid, method="mse", weights=imp.expand_as(w)), w, imp)
        hn = h.numpy()
        codes = gptq_quantize(w.numpy(), hn, qp.scale.double().numpy(),
                              qp.zero_point.double().numpy(), qmin=grid.qmin, qmax=grid.qmax,
                              group_size=group_size, act_order=self.act_order, damp=self.damp, h_div=div,
                              overwrite_h=owned is not None, restore_h=not self._on_super_grid())
        if not self._on_super_grid():
            qp = self._refit(w, hn, codes, qp, group_size)
        return QuantizedWeight(torch.from_numpy(codes).to(torch.uint8), qp.scale.to(torch.float32),
                               qp.zero_point.to(torch.float32), self.bits, group_size, self.name,
                               in_features, sym=grid.symmetric)


    def _on_lattice(self, w, group_size, in_features, stats):
        """GPTQ onto a lattice type: the sub-blocks' scales searched with the Hessian's diagonal,
        then each run of columns rounded onto the grid's points with its error fed onto the
        columns after it (:func:`quanta.model.formats.lattice.quantize_gptq`; in the inputs' order —
        a vector is consecutive inputs)."""
        from quanta.model.formats import lattice

        owned = stats.take_hessian()
        xtx = owned if owned is not None else stats.xtx
        codes, scales = lattice.quantize_gptq(
            w.numpy(), self.lattice, xtx.to(torch.float64).numpy(),
            importance(stats.mean_sq, w.shape[1]).numpy(),
            damp=self.damp, h_div=float(max(stats.n, 1)), overwrite_h=owned is not None)
        return self._lattice_weight(codes, scales, group_size, in_features)

    def _refit(self, w: torch.Tensor, h: np.ndarray, codes: np.ndarray, qp: QParams,
               group_size: int) -> QParams:
        """The grid refitted to the codes GPTQ chose (:func:`quanta.core.hessian.refit_scales`:
        each group's scale — and a GGML asymmetric type's float16 offset, which the file keeps in
        place of a zero point — for the least output error, all of a row's groups together),
        as the storage keeps it; a group whose new scale is not positive keeps its old grid."""
        from quanta.core.hessian import refit_scales

        s0, z0 = qp.scale.double(), qp.zero_point.double()
        offsets = bool(self.storage) and not qp.grid.symmetric  # Q4_1, Q5_1: d and m in float16
        if offsets:
            s, m = refit_scales(w.numpy(), h, codes, group_size, s0.numpy(), (-s0 * z0).numpy(),
                                damp=self.damp)
            z = torch.from_numpy(-m / np.where(s > 0, s, 1.0))
        else:  # the codes' places on the unit grid, code − zero (float32: exact for 8-bit codes)
            values = torch.from_numpy(codes).float() - z0.float().repeat_interleave(group_size, 1)
            s, _ = refit_scales(w.numpy(), h, values.numpy(), group_size, s0.numpy(), damp=self.damp)
            z = z0
        s = torch.from_numpy(s)
        ok = torch.isfinite(s) & (s > 0) & torch.isfinite(z)
        return self.stored(QParams(qp.grid, torch.where(ok, s, s0).float(), torch.where(ok, z, z0).float(),
                                   qp.shape))


class AWQ(IMatrix, name="awq"):
    """AWQ: per-input-channel scales from the activations, searched per group of layers and
    folded into the layer before (:mod:`quanta.model.quantize.awq`), then the importance-weighted
    clipping search of "imatrix" on the scaled weights."""



class AWQGPTQ(GPTQ, name="awq+gptq"):
    """AWQ's input scales, then GPTQ on the scaled weights."""



def importance(mean_sq: torch.Tensor, width: int) -> torch.Tensor:
    """Per-input weights of the clipping searches: the mean squared activation (the Hessian's
    diagonal) over its mean, zero on padding columns, plus 10⁻³ so that no input weighs nothing."""
    imp = torch.zeros(width, dtype=torch.float32)
    imp[: mean_sq.numel()] = mean_sq.to(torch.float32)
    return imp / imp.mean().clamp_min(1e-30) + 1e-3


def _storage_levels(storage: str | None) -> np.ndarray | None:
    if storage is None:
        return None
    from quanta.model.formats.weight import BLOCK_TYPES

    if storage not in BLOCK_TYPES:
        raise ConfigError(f"unknown GGML storage type {storage!r} (choose from {', '.join(BLOCK_TYPES)})")
    return BLOCK_TYPES[storage].codebook


# Proximal solver: min over z of ‖W − dequantize(quantize(W; s, z))‖_p^p, p < 1 (Badri & Shaji).
def hqq_zero_points(w: torch.Tensor, qp: QParams, *, iters: int = 20, p: float = 0.7,
                    beta: float = 10.0, kappa: float = 1.01) -> torch.Tensor:
    """HQQ zero-point refinement: improved zero points (same shape as ``qp.zero_point``).

    Each step rounds on the core grid with the current zero points, shrinks the error
    (generalised soft-thresholding for the lp "norm"), and solves for the zero points in closed
    form; the best zero points seen (by the lp error) are kept.
    """
    out, inp = w.shape
    g = qp.grid.group_size
    wg = w.view(out, inp // g, g)
    s = qp.scale[..., None]
    z = qp.zero_point.clone()
    best_z, best_err = z.clone(), None
    for _ in range(iters):
        step = QParams(qp.grid, qp.scale, z, qp.shape)
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


def quantizer_for(method: str, fmt: WeightFormat) -> WeightQuantizer:
    """The registered rounding ``method`` on the storage format ``fmt`` — the one way a
    quantizer is made."""
    check_choice(method, QUANTIZERS, "method")
    return QUANTIZERS[method](fmt)


def quantizers_for(method: str, formats: dict[str, WeightFormat]) -> dict[str, WeightQuantizer]:
    """:func:`quantizer_for` on each layer's format (layer name → format): a per-layer plan."""
    return {n: quantizer_for(method, f) for n, f in formats.items()}


def make_quantizer(method: str = "rtn", *, bits: int = 4, group_size: int | None = 128,
                   sym: bool = False, storage: str | None = None) -> WeightQuantizer:
    """:func:`quantizer_for` on the format these numbers name (the CLI's and the tests' way to
    say it): quanta's grid, or with ``storage`` the GGML block type whose scales it keeps."""
    fmt = WeightFormat(storage, bits, group_size, sym, storage) if storage else \
        grid_format(bits, group_size, sym)
    return quantizer_for(method, fmt)


def quantize_weight(w: torch.Tensor, *, bits: int = 4, group_size: int = 128, method: str = "rtn",
                    sym: bool = False, name: str = "", stats: LayerStats | None = None) -> QuantizedWeight:
    """Quantize one ``(out, in)`` weight with the registered quantizer ``method``."""
    return make_quantizer(method, bits=bits, group_size=group_size, sym=sym).quantize(
        w, stats=stats, name=name)


__all__ = [
    "AUTO_GROUPS",
    "AWQ",
    "AWQGPTQ",
    "GPTQ",
    "HQQ",
    "NF4",
    "QUANTIZERS",
    "RTN",
    "IMatrix",
    "LayerStats",
    "MSEClip",
    "QuantizedWeight",
    "WeightQuantizer",
    "auto_group",
    "dequantize_codes",
    "make_quantizer",
    "methods",
    "quantize_weight",
    "quantizers_for",
    "weight_grid",
]
