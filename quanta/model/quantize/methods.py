"""The rounding methods by name, and what each needs — the one table of their traits.

A method's implementation (:mod:`quanta.model.quantize.quantizers`, ``class X(WeightQuantizer,
name="x")``) takes its traits from here when it registers, so that a plan (:mod:`quanta.model.quantize.plan`)
and the option checks know what a method needs — calibration windows, the input Hessian, a bit
range — without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """A rounding method: its name, one line of summary, whether it needs calibration data and
    the input's second moments (Hessian), whether it can round onto a storage codebook (IQ4_NL),
    whether it chooses input scales per block first (AWQ), whether its grid is its own codebook
    (no GGML type or integer scheme stores it), whether its zero points are fractional (only an
    asymmetric GGML type keeps them), and its bit range."""

    name: str
    summary: str
    needs_calibration: bool = False
    needs_hessian: bool = False
    takes_levels: bool = False
    scales_activations: bool = False
    own_codebook: bool = False
    fractional_zeros: bool = False
    min_bits: int = 2
    max_bits: int = 8


METHODS = {m.name: m for m in (
    Method("rtn", "round to nearest on a min/max grid", takes_levels=True),
    Method("mse", "clipping searched per group for the least squared error", takes_levels=True),
    Method("hqq", "HQQ half-quadratic zero-point refinement", fractional_zeros=True),
    Method("nf4", "NormalFloat4 codebook (4 bits)", own_codebook=True, min_bits=4, max_bits=4),
    Method("imatrix", "importance-weighted clipping search (llama.cpp's imatrix diagonal)",
           needs_calibration=True, takes_levels=True),
    Method("gptq", "GPTQ: Hessian-aware rounding on calibration data (act-order, static groups)",
           needs_calibration=True, needs_hessian=True, takes_levels=True),
    # AWQ's scale search measures each group's output error with the Hessian
    Method("awq", "AWQ activation-aware input scales, then importance-weighted clipping",
           needs_calibration=True, needs_hessian=True, takes_levels=True, scales_activations=True),
    Method("awq+gptq", "AWQ input scales, then GPTQ", needs_calibration=True, needs_hessian=True,
           takes_levels=True, scales_activations=True),
)}
