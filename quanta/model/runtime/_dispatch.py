"""The decode kernels for this processor: ``_native_avx512`` (AVX2, FMA, AVX-512 with VNNI),
``_native_vnni`` (AVX2, FMA and AVX-VNNI), ``_native_avx2`` (AVX2 and FMA) or the portable
``_native``, the best this processor runs and this installation built.
``QUANTA_KERNELS=portable`` forces the portable build (the variable
the JPEG kernels read too)."""

from __future__ import annotations

import os
from types import ModuleType

from quanta.image.jpeg._dispatch import ENV
from quanta.model.runtime import _native as portable

#: module names by what the processor runs (:func:`_native.cpu_level`)
BUILDS = {
    3: ("_native_avx512", "_native_avx2"),
    2: ("_native_vnni", "_native_avx2"),
    1: ("_native_avx2",),
    0: (),
}


def choose(setting: str | None = None) -> ModuleType:
    """The kernel module for ``setting`` (default: the environment's ``QUANTA_KERNELS``)."""
    setting = (os.environ.get(ENV, "") if setting is None else setting).strip().lower()
    if setting == "portable":
        return portable
    import importlib

    for name in BUILDS[portable.cpu_level()]:
        try:
            return importlib.import_module(f"quanta.model.runtime.{name}")
        except ImportError:  # not built here
            continue
    return portable


kernels = choose()


def build_name() -> str:
    """The chosen build's module name, e.g. ``_native_avx512`` (for reports)."""
    return kernels.__name__.rsplit(".", 1)[-1]
