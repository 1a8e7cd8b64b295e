"""quanta.core — the one implementation of what every medium shares.

Three questions make a quantizer: which levels (:mod:`grid`, :mod:`codebook`, :mod:`lattice`), how to round
(nearest, dithered: :mod:`dither`) and where the error goes (:mod:`feedback`). Around them:
bit packing (:mod:`packing`), measures (:mod:`measures`) and bit allocation under a budget
(:mod:`allocate`).
"""

from __future__ import annotations

# bound now: the function shares its module's name, which importing the module would otherwise
# leave on the package in its place
from quanta.core.allocate import Allocation, allocate

#: each other public name and the module that defines it: a medium that needs one module (the JPEG
#: encoder: the grid) does not import the others
_WHERE = {
    "NF4": "codebook",
    "dequantize_scaled": "codebook",
    "lloyd_max": "codebook",
    "lookup": "codebook",
    "nearest": "codebook",
    "quantize_scaled": "codebook",
    "DitherSource": "dither",
    "dither_noise": "dither",
    "FeedbackState": "feedback",
    "error_feedback_quantize": "feedback",
    "noise_gain_db": "feedback",
    "Grid": "grid",
    "QParams": "grid",
    "Lattice": "lattice",
    "choose_qparams": "grid",
    "dequantize": "grid",
    "fake_quantize": "grid",
    "quantize": "grid",
    "bits_per_element": "measures",
    "mse": "measures",
    "psnr_db": "measures",
    "snr_db": "measures",
    "sqnr_theory_db": "measures",
    "storage_bits": "measures",
    "pack": "packing",
    "packed_size": "packing",
    "unpack": "packing",
}


__all__ = [
    "NF4", "Allocation", "DitherSource", "FeedbackState", "Grid", "Lattice", "QParams", "allocate",
    "bits_per_element", "choose_qparams", "dequantize", "dequantize_scaled", "dither_noise",
    "error_feedback_quantize", "fake_quantize", "lloyd_max", "lookup", "mse", "nearest",
    "noise_gain_db", "pack", "packed_size", "psnr_db", "quantize", "quantize_scaled", "snr_db",
    "sqnr_theory_db", "storage_bits", "unpack",
]


def __getattr__(name: str) -> object:
    """The public names, imported from their module on first use (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'quanta.core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"quanta.core.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
