"""quanta.core — the one implementation of what every medium shares.

Three questions make a quantizer: which levels (:mod:`grid`, :mod:`codebook`), how to round
(nearest, dithered: :mod:`dither`) and where the error goes (:mod:`feedback`). Around them:
bit packing (:mod:`packing`), measures (:mod:`measures`) and bit allocation under a budget
(:mod:`allocate`).
"""

from quanta.core.allocate import Allocation, allocate
from quanta.core.codebook import NF4, dequantize_scaled, lloyd_max, lookup, nearest, quantize_scaled
from quanta.core.dither import DitherSource, dither_noise
from quanta.core.feedback import FeedbackState, error_feedback_quantize, noise_gain_db
from quanta.core.grid import Grid, QParams, choose_qparams, dequantize, fake_quantize, quantize
from quanta.core.measures import (
    bits_per_element,
    mse,
    psnr_db,
    snr_db,
    sqnr_theory_db,
    storage_bits,
)
from quanta.core.packing import pack, packed_size, unpack

__all__ = [
    "NF4", "Allocation", "DitherSource", "FeedbackState", "Grid", "QParams", "allocate",
    "bits_per_element", "choose_qparams", "dequantize", "dequantize_scaled", "dither_noise",
    "error_feedback_quantize", "fake_quantize", "lloyd_max", "lookup", "mse", "nearest",
    "noise_gain_db", "pack", "packed_size", "psnr_db", "quantize", "quantize_scaled", "snr_db",
    "sqnr_theory_db", "storage_bits", "unpack",
]
