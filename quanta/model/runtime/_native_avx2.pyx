# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The decode kernels of ``_native.pyx`` (included: the same source) compiled with AVX2 and FMA
(``_native_vnni``: and AVX-VNNI); :mod:`._dispatch` chooses. Results agree with the portable
build within float rounding (the integer parts are exact; the float sums run in another order)."""

include "_native.pyx"
