"""The lattice types on quanta's compiled kernels against llama.cpp's, on the same GGUF files.

    python bench/model_lattice_speed.py [--shape llama-3.2-1b] [--types IQ2_M,IQ3_XXS,Q2_K,Q4_K_M]
                                        [--repeat 3] [--work DIR]

Makes a seeded random-weight model of a published shape (bench/make_model.py: time and memory
only, never quality), writes it as GGUF with ``quanta model quantize --format gguf --type T
--uniform --method rtn`` for each T (llama.cpp's rules per tensor: the lattice types IQ2_S/IQ3_S
in IQ2_M, IQ3_XXS/IQ2_S in IQ3_XXS; Q2_K/Q3_K in Q2_K; Q4_K_M as the reference), then on each
file, with 2 threads: quanta's kernels (``bench/model_speed.py --native-one``: pp512 and tg128
from an empty cache, medians of ``--repeat``) against ``llama-bench -p 512 -n 128`` on the same
file; and the kernels' single-token product with a 4096 × 4096 matrix of random blocks of each
lattice type, Q2_K and Q3_K beside Q4_K's and IQ4_XS's (ms, best of 5). ``--work`` keeps the
model and files between runs (made again only when missing). Prints a table, writes
``bench/out/model_lattice_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._llama_cpp import ensure_built  # noqa: E402
from bench._util import machine, write_json  # noqa: E402
from bench.kernels_ab import random_rows  # noqa: E402
from bench.model_speed import llama_bench  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

#: the single-token products timed: the five lattice types, the 2- and 3-bit K-quants that the
#: lattice presets put beside them, and Q4_K and IQ4_XS for reference
PRODUCT_TYPES = ("Q4_K", "Q3_K", "Q2_K", "IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S")


def make_files(work: Path, shape: str, types: list[str]) -> dict[str, dict]:
    """The model folder and one GGUF file per type (kept when present); each file's bytes and
    the seconds its command took (None when it was already there)."""
    model = work / "model"
    if not model.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_model.py"), shape, str(model)], check=True)
    out = {}
    for t in types:
        f = work / f"{t}.gguf"
        took = None
        if not f.exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "quanta.cli", "model", "quantize", str(model), "-o", str(f),
                            "--format", "gguf", "--type", t, "--uniform", "--method", "rtn", "--json"],
                           check=True, capture_output=True)
            took = time.perf_counter() - t0
        out[t] = {"path": f, "bytes": f.stat().st_size, "quantize_s": took, "tensor_types": tensor_types(f)}
    return out


def tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each GGML type the file holds."""
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for t in GGUFReader(str(path)).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def products(rows: int = 4096, cols: int = 4096) -> dict[str, float]:
    """Milliseconds of one token's product with a ``rows × cols`` matrix of random blocks per
    type, their float16 steps small and finite (2 threads, best of 5, after a warm-up)."""
    import gguf
    import numpy as np

    from quanta.model.runtime._dispatch import kernels
    from quanta.model.runtime.native import load_grid

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, cols)).astype(np.float32)
    kernels.threads(2)  # (the pool ran one thread here before 2026-12-08: figures labelled 2 were 1)
    out = {}
    for name in PRODUCT_TYPES:
        kind = int(gguf.GGMLQuantizationType[name])
        load_grid(kernels, kind)
        raw = random_rows(name, rows, cols, rng)
        kernels.matmul(kind, raw, cols, x)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            kernels.matmul(kind, raw, cols, x)
            best = min(best, time.perf_counter() - t0)
        out[name] = best * 1e3
    return out


def table_row(r: dict) -> list[str]:
    q, lc = r["quanta"], r["llama_cpp"]
    return [r["type"], f"{r['bytes'] / 1e6:.0f}", ", ".join(f"{k} {v}" for k, v in r["tensor_types"].items()),
            f"{q['tg128']:.2f}", f"{lc['tg128']:.2f}", f"{q['tg128'] / lc['tg128']:.2f}×",
            f"{q['pp512']:.1f}", f"{lc['pp512']:.1f}", f"{q['pp512'] / lc['pp512']:.2f}×",
            f"{q['peak_rss_mb']:.0f} / {lc['peak_rss_mb']:.0f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shape", default="llama-3.2-1b")
    ap.add_argument("--types", default="IQ2_M,IQ3_XXS,Q2_K,Q4_K_M")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, help="keep the model and files here (default: a temporary folder)")
    args = ap.parse_args()
    bins = ensure_built(("llama-bench",))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = make_files(work, args.shape, args.types.split(","))
        rows = []
        for t, info in files.items():
            q = subprocess.run([sys.executable, str(ROOT / "bench" / "model_speed.py"), "--native-one",
                                str(info["path"]), "--threads", "2", "--repeat", str(args.repeat)],
                               check=True, capture_output=True, text=True).stdout
            quanta = json.loads(q.strip().splitlines()[-1])
            peer = llama_bench(bins, info["path"], args.repeat, threads="2")
            row = {"type": t, "bytes": info["bytes"], "quantize_s": info["quantize_s"],
                   "tensor_types": info["tensor_types"], "quanta": quanta,
                   "llama_cpp": {"pp512": peer[("pp512", 2)], "tg128": peer[("tg128", 2)],
                                 "peak_rss_mb": peer["peak_rss_mb"]}}
            rows.append(row)
            console.print(f"{t}: tg128 {quanta['tg128']:.2f}, llama.cpp {peer[('tg128', 2)]:.2f} tok/s")
    prod = products()
    print_table(f"quanta's kernels and llama-bench on the same files, {args.shape} shape, random weights "
                f"(time only), 2 threads, medians of {args.repeat} ({machine()})",
                ["file", "MB", "tensor types", "tg128 quanta", "tg128 llama.cpp", "ratio", "pp512 quanta",
                 "pp512 llama.cpp", "ratio", "peak RSS MB quanta / llama.cpp"],
                [table_row(r) for r in rows], left=(0, 2))
    print_table("one token × a 4096 × 4096 matrix of random blocks, quanta's kernels, 2 threads "
                "(ms, best of 5)", ["type", "ms"], [[k, f"{v:.2f}"] for k, v in prod.items()], left=(0,))
    write_json("model_lattice_speed.json", {"shape": args.shape, "repeat": args.repeat,
                                            "rows": rows, "products_ms": prod})


if __name__ == "__main__":
    main()
