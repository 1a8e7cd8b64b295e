# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The JPEG kernels of ``_kernels.pyx`` (included: the same source) compiled with AVX2 for the
processors that have it; :mod:`._dispatch` chooses. Built without fused multiply-adds
(``-ffp-contract=off``), so every result is the portable build's, bit for bit."""

include "_kernels.pyx"
