"""The adaptive shaper's design in plain numpy, the oracle of the compiled one
(:func:`quanta.audio.adaptive.design`): Levinson–Durbin over many frames at once."""

import numpy as np


def levinson(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levinson–Durbin over the last axis of autocorrelations ``r`` (``(…, order + 1)``): the
    monic prediction-error filters ``a`` (``(…, order + 1)``) and reflection coefficients
    ``k`` (``(…, order)``)."""
    shape = r.shape[:-1]
    order = r.shape[-1] - 1
    a = np.zeros((*shape, order + 1))
    a[..., 0] = 1.0
    k = np.zeros((*shape, order))
    err = r[..., 0].copy()
    for m in range(1, order + 1):
        km = -np.einsum("...i,...i->...", a[..., :m], r[..., m:0:-1]) / err
        a[..., : m + 1] = a[..., : m + 1] + km[..., None] * a[..., m::-1]
        err = err * (1.0 - km * km)
        k[..., m - 1] = km
    return a, k
