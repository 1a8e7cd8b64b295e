"""Build the ahead-of-time kernels (Cython → C); everything else is in pyproject.toml."""

import platform

from Cython.Build import cythonize
from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so results are the same on every machine.
FLAGS = ["-O3", "-ffp-contract=off"]
KERNELS = ["quanta.core._kernels", "quanta.image.jpeg._kernels", "quanta.image.jpeg._scans",
           "quanta.image._png", "quanta.audio._kernels"]

# The JPEG kernels once more with AVX2 on x86-64 (chosen at run time by quanta.image.jpeg._dispatch;
# without fused multiply-adds the results are the same bits).
# The decode kernels three times more: AVX2 with FMA, and that with AVX-VNNI or with AVX-512
# (quanta.model.runtime._dispatch).
X86 = platform.machine().lower() in ("x86_64", "amd64")
SIMD = {"quanta.image.jpeg._kernels_avx2": ["-mavx2"],
        "quanta.model.runtime._native_avx2": ["-mavx2", "-mfma", "-mf16c"],
        "quanta.model.runtime._native_vnni": ["-mavx2", "-mfma", "-mf16c", "-mavxvnni"],
        "quanta.model.runtime._native_avx512": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw",
                                                "-mavx512vl", "-mavx512vnni"]} if X86 else {}
NATIVE = ["quanta.model.runtime._native", "quanta.model.runtime._native_avx2",
          "quanta.model.runtime._native_vnni", "quanta.model.runtime._native_avx512"]


def extension(name: str) -> Extension:
    threads = ["-pthread"] if name in NATIVE else []
    return Extension(name, [name.replace(".", "/") + ".pyx"],
                     extra_compile_args=FLAGS + SIMD.get(name, []) + threads, extra_link_args=threads,
                     include_dirs=["quanta/model/runtime", "quanta/core"])


NAMES = dict.fromkeys([*KERNELS, "quanta.model.runtime._native", *SIMD])
setup(ext_modules=cythonize([extension(name) for name in NAMES], language_level=3))
