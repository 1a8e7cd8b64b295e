# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The decode kernels of ``_native.pyx`` (included: the same source) compiled with AVX2, FMA and
AVX-VNNI (one instruction for the 8-bit products); :mod:`._dispatch` chooses. The integer parts
are exact, so the results are ``_native_avx2``'s bit for bit."""

include "_native.pyx"
