"""The JPEG kernels for this processor: the AVX2 build (``_kernels_avx2``: the same source, the
same results bit for bit) where the processor and the operating system support AVX2, else the
portable ``_kernels``. ``QUANTA_KERNELS=portable`` forces the portable build."""

from __future__ import annotations

import os
from types import ModuleType

from quanta.image.jpeg import _kernels as portable

#: the environment variable that forces the portable kernels ("portable")
ENV = "QUANTA_KERNELS"


def choose(setting: str | None = None) -> ModuleType:
    """The kernel module for ``setting`` (default: the environment's :data:`ENV`)."""
    setting = (os.environ.get(ENV, "") if setting is None else setting).strip().lower()
    if setting == "portable" or not portable.cpu_has_avx2():
        return portable
    try:
        from quanta.image.jpeg import _kernels_avx2
    except ImportError:  # not built (a processor without x86 instructions)
        return portable
    return _kernels_avx2


kernels = choose()
