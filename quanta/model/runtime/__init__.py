"""What runs a quantized model on the CPU.

:mod:`qlinear` and :mod:`qembed` (layers holding packed codes, scales and zero points; the kernel
path chosen on load) → :mod:`fastpath` (a lean decode step for Llama-family models) and
:mod:`lite` (a Llama without transformers, for quick start-up) → :mod:`generate` (prefill, then
one token at a time, greedy or sampled with a seed).
"""
