"""quanta's super-block grids against llama.cpp's own, tensor by tensor, without calibration.

    python bench/kquant_grid.py [--types Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,IQ4_XS]

For each type, ``llama-quantize --pure`` (the 0.3.36 build, no importance matrix) writes
``smollm2-unbinned`` in that type; the tensors whose rows hold whole super-blocks (the 30
``ffn_down`` matrices, 1536 wide) are read back with the ``gguf`` package and compared with
quanta's round to nearest on the same type — ``rtn`` (each group's min/max) and ``mse`` (the
clipping search), both with the stored grid's factors refined — by the squared error summed over
those tensors, relative to llama.cpp's. Below 1: quanta's grid loses less. Writes
bench/out/kquant_grid.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench._llama_cpp import ensure_built  # noqa: E402
from bench._util import machine, write_json  # noqa: E402
from quanta.render.tables import print_table  # noqa: E402


def main() -> None:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from quanta.model.formats.weight import BLOCK_TYPES
    from quanta.model.quantize.quantizers import make_quantizer
    from quanta.model.sources import unbinned

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--types", default="Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,IQ4_XS")
    args = ap.parse_args()
    torch.set_num_threads(2)
    bin_dir = ensure_built()
    src = unbinned.ensure()
    ref = {t.name: np.array(t.data, np.float32).reshape(tuple(int(s) for s in reversed(t.shape)))
           for t in GGUFReader(src).tensors if "ffn_down" in t.name}
    tmp = Path(tempfile.mkdtemp(prefix="kgrid-"))
    rows = []
    for kind in args.types.split(","):
        out = tmp / f"{kind}.gguf"
        subprocess.run([str(bin_dir / "llama-quantize"), "--pure", str(src), str(out), kind, "2"], check=True,
                       capture_output=True)
        theirs = {t.name: t for t in GGUFReader(out).tensors}
        t = BLOCK_TYPES[kind]
        err = {"llama.cpp": 0.0, "rtn": 0.0, "mse": 0.0}
        secs = {"rtn": 0.0, "mse": 0.0}
        for name, w in ref.items():
            x = theirs[name]
            assert x.tensor_type.name == kind, (name, x.tensor_type.name)
            back = np.asarray(dequantize(x.data, x.tensor_type), np.float32).reshape(w.shape)
            err["llama.cpp"] += float(((back - w) ** 2).sum())
            for method in ("rtn", "mse"):
                q = make_quantizer(method, bits=t.bits, group_size=t.group, sym=t.sym, storage=kind)
                t0 = time.perf_counter()
                d = q.quantize(torch.from_numpy(w)).dequantize().numpy()
                secs[method] += time.perf_counter() - t0
                err[method] += float(((d - w) ** 2).sum())
        rows.append({"type": kind, "tensors": len(ref), **{f"sse_{k}": v for k, v in err.items()},
                     "rtn_ratio": err["rtn"] / err["llama.cpp"], "mse_ratio": err["mse"] / err["llama.cpp"],
                     "rtn_s": secs["rtn"], "mse_s": secs["mse"]})
    print_table(f"super-block grids, no calibration: squared error over SmolLM2-unbinned's 30 ffn_down "
                f"matrices ({machine()})",
                ["type", "llama.cpp --pure", "quanta rtn", "ratio", "quanta mse", "ratio",
                 "quanta s (rtn, mse)"],
                [[r["type"], f"{r['sse_llama.cpp']:.5g}", f"{r['sse_rtn']:.5g}", f"{r['rtn_ratio']:.2f}×",
                  f"{r['sse_mse']:.5g}", f"{r['mse_ratio']:.2f}×", f"{r['rtn_s']:.1f}, {r['mse_s']:.1f}"]
                 for r in rows], left=(0,))
    write_json("kquant_grid", {"rows": rows})


if __name__ == "__main__":
    main()
