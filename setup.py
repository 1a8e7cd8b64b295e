"""Build the ahead-of-time kernels (Cython → C); everything else is in pyproject.toml."""

import platform

from Cython.Build import cythonize
from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so results are the same on every machine.
FLAGS = ["-O3", "-ffp-contract=off"]
KERNELS = ["quanta.core._kernels", "quanta.image.jpeg._kernels", "quanta.image.jpeg._scans",
           "quanta.audio._kernels"]

# The JPEG kernels once more with AVX2 on x86-64 (chosen at run time by quanta.image.jpeg._dispatch;
# without fused multiply-adds the results are the same bits).
SIMD = {"quanta.image.jpeg._kernels_avx2": ["-mavx2"]} if platform.machine().lower() in ("x86_64", "amd64") \
    else {}

setup(ext_modules=cythonize(
    [Extension(name, [name.replace(".", "/") + ".pyx"], extra_compile_args=FLAGS + SIMD.get(name, []))
     for name in [*KERNELS, *SIMD]],
    language_level=3))
