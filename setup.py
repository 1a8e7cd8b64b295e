"""Build the ahead-of-time kernels (Cython → C); everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so results are the same on every machine.
FLAGS = ["-O3", "-ffp-contract=off"]
KERNELS = ["quanta.core._kernels", "quanta.image.jpeg._kernels", "quanta.image.jpeg._scans",
           "quanta.audio._kernels"]

setup(ext_modules=cythonize(
    [Extension(name, [name.replace(".", "/") + ".pyx"], extra_compile_args=FLAGS) for name in KERNELS],
    language_level=3))
