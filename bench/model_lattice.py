"""quanta's lattice types (IQ2_XXS … IQ3_S) against llama.cpp's, tensor by tensor, on
``smollm2-unbinned``, in one run.

    python bench/model_lattice.py [--types IQ2_XXS,IQ2_XS,IQ2_M,IQ3_XXS,IQ3_S] [--windows 16]

For each llama.cpp file type T: llama.cpp's file (``llama-quantize`` with the importance matrix of
quanta's default calibration text, as bench/model_frontier.py makes it) and quanta's ``--type T
--uniform`` files — every tensor in llama.cpp's own type (quanta's table of its rules), rounded by
GPTQ (the default) and by ``--method imatrix`` (the importance-weighted search alone, no error
fed on) —, each one command as a user runs it. SmolLM2's only rows of a multiple of 256 are its
``ffn_down`` layers (1536 inputs), so those are the lattice tensors compared: each one dequantized
by the ``gguf`` package, its output error measured through the float model on WikiText-2 *test*
windows — ``tr(E H Eᵀ) / tr(W H Wᵀ)``, ``H`` the layer's input second moments there —, summed
over the layers in the type. The other tensors of the files are the same types (IQ4_NL, Q8_0, …)
and are not compared here (bench/model_frontier.py scores whole files). Writes
bench/out/model_lattice.json.
"""

from __future__ import annotations

import argparse
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
from bench.model_frontier import llama, llama_imatrix, quanta_quantize  # noqa: E402
from quanta.model.eval.evaluate import wikitext2_test_text, windows  # noqa: E402
from quanta.model.sources import unbinned  # noqa: E402
from quanta.model.sources.load import load_model  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

LATTICE = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S")


def down_hessians(ref_path: Path, n_windows: int) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Each block's ``ffn_down`` float weight and its inputs' second moments ``XᵀX / n`` (float64)
    on WikiText-2 test windows of 512 tokens through the float model."""
    ref = load_model(ref_path)
    wins = windows(ref.tokenizer, wikitext2_test_text(), bos_id=ref.bos_id, n_chunks=n_windows)
    hs: dict[int, torch.Tensor] = {}
    count = {"n": 0}
    hooks = []
    for i, layer in enumerate(ref.model.model.layers):
        def hook(_m, args, i=i):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            hs[i] = hs.get(i, 0) + x.T @ x
            if i == 0:
                count["n"] += x.shape[0]
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(hook))
    with torch.no_grad():
        for w in wins:
            ref.model(w[None])
    for h in hooks:
        h.remove()
    weights = {i: layer.mlp.down_proj.weight.detach().double()
               for i, layer in enumerate(ref.model.model.layers)}
    return weights, {i: h / count["n"] for i, h in hs.items()}


def down_errors(path: Path, weights: dict, hs: dict) -> dict[str, tuple[float, float, int]]:
    """Per GGML type of the file's lattice ``ffn_down`` tensors: (summed ``tr(E H Eᵀ)``, summed
    ``tr(W H Wᵀ)``, tensors)."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    out: dict[str, list] = {}
    for t in GGUFReader(path).tensors:
        if not t.name.endswith("ffn_down.weight") or t.tensor_type.name not in LATTICE:
            continue
        i = int(t.name.split(".")[1])
        wq = dequantize(np.asarray(t.data), t.tensor_type).reshape(weights[i].shape)
        wq = torch.from_numpy(wq).double()
        e = weights[i] - wq
        acc = out.setdefault(t.tensor_type.name, [0.0, 0.0, 0])
        acc[0] += float(((e @ hs[i]) * e).sum())
        acc[1] += float(((weights[i] @ hs[i]) * weights[i]).sum())
        acc[2] += 1
    return {k: tuple(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--types", default="IQ2_XXS,IQ2_XS,IQ2_M,IQ3_XXS,IQ3_S")
    ap.add_argument("--windows", type=int, default=16, help="WikiText-2 test windows of 512 tokens for H")
    args = ap.parse_args()
    torch.set_num_threads(2)
    bin_dir = ensure_built()
    ref_path = unbinned.ensure()
    tmp = Path(tempfile.mkdtemp(prefix="lattice-"))
    imatrix = llama_imatrix(bin_dir, ref_path, tmp)
    weights, hs = down_hessians(ref_path, args.windows)
    rows = []
    for qtype in args.types.split(","):
        files = {}
        t0 = time.perf_counter()
        out = tmp / f"llama_{qtype}.gguf"
        llama(bin_dir, "llama-quantize", "--imatrix", str(imatrix), str(ref_path), str(out), qtype, "2")
        files["llama.cpp + imatrix"] = (out, time.perf_counter() - t0)
        for label, method in (("quanta GPTQ", "gptq"), ("quanta imatrix", "imatrix")):
            out = tmp / f"quanta_{qtype}_{method}.gguf"
            t0 = time.perf_counter()
            quanta_quantize(out, ["--type", qtype, "--uniform", "--method", method])
            files[label] = (out, time.perf_counter() - t0)
        errs = {label: down_errors(path, weights, hs) for label, (path, _) in files.items()}
        for kind in sorted(set().union(*errs.values())):
            row = {"preset": qtype, "type": kind}
            for label, (path, secs) in files.items():
                e, w2, n = errs[label].get(kind, (float("nan"), 1.0, 0))
                row[label] = {"rel_error": e / w2, "tensors": n, "file_bytes": path.stat().st_size,
                              "seconds": secs}
            rows.append(row)
            console.print(f"{qtype} {kind}: " + ", ".join(f"{k} {v['rel_error']:.4f}" for k, v in row.items()
                                                           if isinstance(v, dict)))
    labels = ["llama.cpp + imatrix", "quanta GPTQ", "quanta imatrix"]
    print_table(f"SmolLM2-135M-unbinned ffn_down in the lattice types: relative output error on "
                f"{args.windows}×512 WikiText-2 test tokens ({machine()})",
                ["preset", "type", "tensors", *labels, "GPTQ / llama.cpp", "file bytes (llama.cpp / quanta)",
                 "whole process s (llama.cpp / quanta GPTQ / imatrix)"],
                [[r["preset"], r["type"], str(r["quanta GPTQ"]["tensors"]),
                  *[f"{r[k]['rel_error']:.4f}" for k in labels],
                  f"{r['quanta GPTQ']['rel_error'] / r['llama.cpp + imatrix']['rel_error']:.2f}×",
                  f"{r['llama.cpp + imatrix']['file_bytes']:,} / {r['quanta GPTQ']['file_bytes']:,}",
                  " / ".join(f"{r[k]['seconds']:.0f}" for k in labels)] for r in rows], left=(0, 1))
    write_json("model_lattice", {"rows": rows, "windows": args.windows})


if __name__ == "__main__":
    main()
