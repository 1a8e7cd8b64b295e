"""How weights are rounded, and the plan that decides it before any weight is read.

:mod:`methods` (the methods' traits, torch-free) → :mod:`plan` (per tensor a format, a method and
the reason; predicted bytes) with :mod:`cost` (predicted memory and time) → :mod:`calibrate`
(windows of text, the layer-by-layer engine) and :mod:`awq` (per-block folds) →
:mod:`mixed` (sensitivity measured, formats allocated under a budget; the recipe shared by the
contract and the tour in :mod:`recipe`) → :mod:`quantizers` (the registered rounding methods:
rtn, gptq, awq, imatrix, hqq, nf4 …, each given a format) → :mod:`apply` (runs them over a
model's layers and swaps in the quantized ones).
"""
