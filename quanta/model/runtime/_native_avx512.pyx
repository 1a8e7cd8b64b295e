# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The decode kernels of ``_native.pyx`` (included: the same source) compiled with AVX2, FMA and
AVX-512 (F, BW, VL, VNNI): two chunks of 32 per instruction in the several-token kernels;
:mod:`._dispatch` chooses."""

include "_native.pyx"
