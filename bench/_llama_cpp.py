"""Build llama.cpp's tools (llama-quantize, llama-imatrix, llama-perplexity; llama-bench for the
speed benchmark) for the model benchmarks, once, outside the repository (``$QUANTA_CACHE/llama.cpp`` or
``~/.cache/quanta/llama.cpp``), from the llama-cpp-python 0.3.36 source distribution on PyPI.

    python bench/_llama_cpp.py        # builds if missing, prints the bin folder

About 20 minutes on 2 cores. On Intel CPUs with AMX the native build crashes on quantized
models, so AMX is switched off in the compiler flags.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quanta.model.sources.unbinned import cache_dir  # noqa: E402

VERSION = "0.3.36"
TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity")


def bin_dir() -> Path:
    return cache_dir() / "llama.cpp" / VERSION / "bin"


def built(tools: tuple[str, ...] = TOOLS) -> bool:
    return all((bin_dir() / t).exists() for t in tools)


def ensure_built(tools: tuple[str, ...] = TOOLS) -> Path:
    """The folder holding the tools, built on first use (a tool missing from an earlier build:
    only its target, minutes)."""
    if built(tools):
        return bin_dir()
    build = cache_dir() / "llama.cpp" / VERSION / "build"
    if (build / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "--build", str(build), "-j", "2", "--target", *tools], check=True)
        for t in tools:
            shutil.copy2(build / "bin" / t, bin_dir() / t)
        return bin_dir()
    if shutil.which("cmake") is None:
        raise SystemExit("cmake is needed to build llama.cpp (apt-get install cmake)")
    work = cache_dir() / "llama.cpp" / VERSION
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={VERSION}", "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tf:
            tf.extractall(work / "src", filter="data")
    src = next((work / "src").glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"
    flags = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    build = work / "build"
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DLLAMA_CURL=OFF",
                    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF",
                    f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"], check=True)
    subprocess.run(["cmake", "--build", str(build), "-j", "2", "--target", *TOOLS, *tools], check=True)
    bin_dir().mkdir(parents=True, exist_ok=True)
    for t in {*TOOLS, *tools}:
        shutil.copy2(build / "bin" / t, bin_dir() / t)
    return bin_dir()


if __name__ == "__main__":
    print(ensure_built())
