"""Two builds of the compiled kernels in one process, taking turns: this tree's and a baseline
checkout's (built in place), on one GGUF file or quanta folder.

    python bench/kernels_ab.py FILE --baseline DIR [--mode tg|pp] [--rounds 8] [--threads 2]
    python bench/kernels_ab.py --mode products --baseline DIR [--rounds 5] [--threads 2]

DIR is another checkout whose extension modules are built (``make .venv/.quanta-installed`` there,
or ``python setup.py build_ext --inplace``). Both builds' engines are made first, then each round
runs tg128 (128 single-token steps from an empty cache) or pp512 (512 tokens at once) on one and
then the other; medians. On a machine whose speed drifts by 10–20 % within minutes (this one),
separate processes measured minutes apart answer ±15 %; steps alternating within one process
answer within a few per cent. Only the kernels differ between the two sides: the Python around
them (loading, repacking a folder) is this tree's.

``--mode products``: no file; one token's product with matrices of random blocks of each of
PRODUCT_TYPES (their float16 steps small and finite), a 4,096 × 4,096 one (14–18 MB: it stays in
the processor's cache between rounds) and a 65,536 × 2,048 one (45–140 MB: read from memory each
time), both builds taking turns, best of ``--rounds``, in 10⁹ weights a second: at 1 thread, and
at ``--threads`` where both builds can set their thread count (``threads``; a build without it
runs 1).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def baseline_kernels(checkout: Path) -> types.SimpleNamespace:
    """The baseline checkout's build of the module this tree's dispatcher chose, loaded under the
    same name beside it. A baseline ``Model.set_matrix`` without the ``wide`` argument is called
    without it."""
    from quanta.model.runtime import _dispatch

    mine = _dispatch.kernels
    path = checkout / "quanta" / "model" / "runtime" / Path(mine.__file__).name
    if not path.exists():
        raise SystemExit(f"{path}: not built (build the baseline checkout's extensions first)")
    spec = importlib.util.spec_from_file_location(mine.__name__, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Model:
        def __init__(self, *args: object) -> None:
            self._m = mod.Model(*args)

        def set_matrix(self, *args: object) -> None:
            try:
                self._m.set_matrix(*args)
            except TypeError:
                self._m.set_matrix(*args[:5])

        def __getattr__(self, name: str) -> object:
            return getattr(self._m, name)

    ns = types.SimpleNamespace(**{k: getattr(mod, k) for k in dir(mod) if not k.startswith("__")})
    ns.Model, ns.__name__ = Model, mod.__name__
    return ns


def engine(kernels: object, path: Path, threads: int, max_len: int) -> object:
    """An engine of ``path`` on ``kernels`` (the dispatcher pointed at them while it is built)."""
    from quanta.model.runtime import _dispatch
    from quanta.model.runtime.native import open_native
    from quanta.model.runtime.native_folder import open_folder

    saved = _dispatch.kernels
    _dispatch.kernels = kernels
    try:
        lm = open_folder(path, threads=threads) if path.is_dir() else open_native(path, threads=threads)
        return lm.decoder(max_len)
    finally:
        _dispatch.kernels = saved


def run(eng: object, mode: str) -> float:
    """tokens per second of one tg128 or pp512"""
    ids = list(range(1000, 1512))
    eng.reset()
    t0 = time.perf_counter()
    if mode == "pp":
        eng.forward(ids)
        n = 512
    else:
        for i in range(128):
            eng.forward([ids[i]])
        n = 128
    return n / (time.perf_counter() - t0)


#: the products ``--mode products`` times: the K-quants and IQ4_XS (super-block kernels since
#: 2026-12-08), Q4_0 and Q8_0 (32-weight loops) for reference
PRODUCT_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "Q4_0", "Q8_0")
#: byte offsets of each block's float16 fields
FLOAT16_AT = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
              "IQ4_XS": (0,), "Q4_0": (0,), "Q8_0": (0,), "IQ2_XXS": (0,), "IQ2_XS": (0,), "IQ2_S": (0,),
              "IQ3_XXS": (0,), "IQ3_S": (0,)}


def random_rows(name: str, rows: int, cols: int, rng: object) -> object:
    """``rows`` stored rows of ``name``: random bytes, the float16 fields set to small finite values."""
    import gguf
    import numpy as np

    size, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]]
    raw = rng.integers(0, 256, (rows, cols // size, nbytes), dtype=np.uint8)
    for at in FLOAT16_AT[name]:
        steps = rng.uniform(-0.05, 0.05, (rows, cols // size, 1)).astype(np.float16)
        raw[:, :, at : at + 2] = steps.view(np.uint8)
    return raw.reshape(rows, -1)


def products(sides: dict, threads: int, rounds: int) -> None:
    """Print each type's and shape's rate on both builds (see the module's docstring)."""
    import gguf
    import numpy as np

    counts = [1] + ([threads] if threads > 1 and all(hasattr(k, "threads") for k in sides.values()) else [])
    rng = np.random.default_rng(0)
    for name in PRODUCT_TYPES:
        kind = int(gguf.GGMLQuantizationType[name])
        for rows, cols in ((4096, 4096), (65536, 2048)):
            raw = random_rows(name, rows, cols, rng)
            x = rng.standard_normal((1, cols)).astype(np.float32)
            for n in counts:
                best = {k: float("inf") for k in sides}
                for mod in sides.values():
                    if hasattr(mod, "threads"):
                        mod.threads(n)
                    mod.matmul(kind, raw, cols, x)  # warm-up
                for _ in range(rounds):
                    for k, mod in sides.items():
                        if hasattr(mod, "threads"):
                            mod.threads(n)
                        t0 = time.perf_counter()
                        mod.matmul(kind, raw, cols, x)
                        best[k] = min(best[k], time.perf_counter() - t0)
                rate = {k: rows * cols / v / 1e9 for k, v in best.items()}
                print(f"{name:7s} {rows:6d} x {cols:5d}, {n} thread{'s' if n > 1 else ' '}: baseline "
                      f"{rate['baseline']:5.1f}, this tree {rate['this tree']:5.1f} Gw/s — "
                      f"{rate['this tree'] / rate['baseline']:.2f}×", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("file", type=Path, nargs="?")
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("--mode", choices=("tg", "pp", "products"), default="tg")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from quanta.model.runtime import _dispatch

    if args.mode == "products":
        products({"baseline": baseline_kernels(args.baseline.resolve()), "this tree": _dispatch.kernels},
                 args.threads, args.rounds)
        return
    if args.file is None:
        ap.error("a FILE is needed for --mode tg and pp")

    engines = {"baseline": engine(baseline_kernels(args.baseline.resolve()), args.file, args.threads, 512),
               "this tree": engine(_dispatch.kernels, args.file, args.threads, 512)}
    for e in engines.values():
        run(e, args.mode)  # warm-up: the pages of the weights read once
    got: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(args.rounds):
        for k, e in engines.items():
            got[k].append(run(e, args.mode))
    med = {k: statistics.median(v) for k, v in got.items()}
    test = "tg128" if args.mode == "tg" else "pp512"
    print(f"{args.file.name} {test}, {args.threads} threads, {args.rounds} rounds, medians: baseline "
          f"{med['baseline']:.1f}, this tree {med['this tree']:.1f} tok/s — "
          f"{med['this tree'] / med['baseline']:.3f}×")


if __name__ == "__main__":
    main()
