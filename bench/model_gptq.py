"""GPTQ and AWQ against round-to-nearest, on ``smollm2-unbinned`` (and MiniLM).

RTN rounds on each group's min/max grid; "imatrix" rounds to nearest on GPTQ's own grid (the
clipping searched with the importance weights — the calibration Hessian's diagonal), so GPTQ's
gain over it is the rounding alone, on the same grid. "awq" is imatrix after AWQ's input scales;
"awq+gptq" is GPTQ after them.

    python bench/model_gptq.py [--chunks 40] [--samples 64] [--length 256] [--skip-minilm]

Reference: ``smollm2-unbinned`` (the bundled Q4_1 weights redrawn inside their bins, so that no
4-bit grid finds them again). Each variant is quantized in memory and scored with quanta-ppl/1
(KL divergence, top-1, perplexity on WikiText-2 *test*); calibration uses the default windows of
the WikiText-2 *valid* slice shipped with quanta. Reports GPTQ's wall time and this process's
peak RSS. MiniLM (a float encoder): mean cosine similarity of sentence embeddings to the float
model, every method at 4 bits in groups of 128. Prints a table, writes bench/out/model_gptq.json.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._util import machine, write_json  # noqa: E402
from quanta.model.eval.evaluate import peak_rss_mb, wikitext2_test_text, windows  # noqa: E402
from quanta.model.eval.harness import EncoderReference, Reference, sweep  # noqa: E402
from quanta.model.quantize.apply import quantize_model  # noqa: E402
from quanta.model.quantize.calibrate import calibration_windows  # noqa: E402
from quanta.model.sources.load import load_model  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

GRIDS = ((4, 128), (3, 128))
METHODS = ("rtn", "imatrix", "gptq", "awq", "awq+gptq")


def smollm2(args: argparse.Namespace) -> list[dict]:
    ref = load_model("smollm2-unbinned")
    wins = windows(ref.tokenizer, wikitext2_test_text(), bos_id=ref.bos_id, n_chunks=args.chunks)
    reference = Reference(ref.model, wins)
    console.print(f"smollm2-unbinned reference: PPL {reference.perplexity:.3f}")
    calib = calibration_windows(ref.tokenizer, samples=args.samples, length=args.length,
                                bos_id=ref.bos_id)
    rows = [{"model": "smollm2-unbinned", "method": "float32", "perplexity": reference.perplexity}]
    candidates = [((method, bits, group), partial(quantize_model, quantizer=method, bits=bits,
                                                  group_size=group, calib=calib))
                  for bits, group in GRIDS for method in METHODS]
    for t in sweep(reference, ref.model, candidates):
        method, bits, group = t.name
        rows.append({"model": "smollm2-unbinned", "method": method, "bits": bits, "group_size": group,
                     "quantize_s": t.seconds, "peak_rss_mb": t.peak_rss_mb, **t.score.figures()})
        console.print(f"{method} {bits}-bit g{group}: KLD {t.score.kld:.4f} in {t.seconds:.0f} s")
    return rows


def minilm(args: argparse.Namespace) -> list[dict]:
    ref = load_model("minilm")
    text = wikitext2_test_text()
    calib = calibration_windows(ref.tokenizer, samples=args.samples, length=128,
                                bos_id=ref.tokenizer.token_to_id("[CLS]"))
    candidates = [(method, partial(quantize_model, quantizer=method, bits=4, group_size=128, calib=calib))
                  for method in METHODS]
    return [{"model": "minilm", "method": t.name, "bits": 4, "group_size": 128, "quantize_s": t.seconds,
             **t.score.figures()}
            for t in sweep(EncoderReference(ref.model, ref.tokenizer, text), ref.model, candidates)]


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--only-minilm", action="store_true")
    return ap.parse_args(argv)


def main() -> None:
    args = _args()
    torch.set_num_threads(2)
    rows = ([] if args.only_minilm else smollm2(args)) + ([] if args.skip_minilm else minilm(args))
    table = []
    for r in rows:
        if r.get("method") == "float32":
            continue
        if r["model"] == "minilm":
            table.append([r["model"], r["method"], f"{r['bits']}/g{r['group_size']}", "—", "—", "—",
                          f"cos {r['cosine_similarity_mean']:.4f}", f"{r['quantize_s']:.0f}"])
            continue
        same = {x["method"]: x for x in rows if x.get("bits") == r["bits"] and x["model"] == r["model"]}
        table.append([r["model"], r["method"], f"{r['bits']}/g{r['group_size']}", f"{r['kld']:.4f}",
                      f"{r['kld'] / same['rtn']['kld']:.2f}×", f"{r['kld'] / same['imatrix']['kld']:.2f}×",
                      f"{100 * r['top1_agreement']:.1f}% / PPL {r['perplexity']:.2f}",
                      f"{r['quantize_s']:.0f}"])
    print_table(f"GPTQ vs round to nearest ({machine()}; {args.chunks}×512 test tokens; calibration "
                f"{args.samples}×{args.length} valid tokens)",
                ["model", "method", "bits/group", "KLD", "vs RTN", "vs imatrix (same grid)",
                 "top-1 / PPL (or cosine)", "time s"],
                table, left=(0, 1, 2))
    console.print(f"peak RSS {peak_rss_mb():.0f} MB")
    write_json("model_gptq", {"rows": rows, "peak_rss_mb": peak_rss_mb()})


if __name__ == "__main__":
    main()
