"""Prefill and decode speed of SmolLM2-135M: quanta (float32, bf16, int8, int4) against
llama.cpp's ``llama-bench`` (Q8_0, Q4_0 of the same weights), 2 threads, one run.

    python bench/model_speed.py [--skip-llama-cpp] [--repeat 3] [--folder QUANTA_FOLDER]

Weights: ``smollm2-unbinned`` (F32). Each quanta configuration runs in its own process, so its
memory is its own. float32 and bf16 (``model.to(bfloat16)``) load the F32 GGUF; the quantized ones
are written by ``quanta model quantize`` and loaded from the folder (int8: 8 bits, one symmetric
scale per row → PyTorch's int8 kernel; int4: ``--method rtn --bits 4``, every layer 4 bits in
groups of 64/128 → PyTorch's int4 kernel, the token embedding — and so the tied head — on 8 bits
per row; "int4, 4-bit embedding": ``--embedding-bits 4``, every matrix on the int4 kernel, as in
llama.cpp's Q4_0; "default --bits 4 (GPTQ)": the plain command, whose folder shares the uniform
file's bytes out by sensitivity — int4 layers in groups of 128/64/32 and some 8-bit rows). Then

* prefill: one forward pass over 512 tokens (best of ``--repeat``), tokens/s;
* decode: 128 greedy tokens after a 64-token prompt with the KV cache
  (:func:`quanta.model.runtime.generate.generate_ids`), best of ``--repeat``: on the model's own forward
  ("eager") and on quanta's lean decode path (``quanta model generate``'s default,
  :mod:`quanta.model.runtime.fastpath`), with whether both gave the same tokens;
* memory: resident set size after the runs (``VmRSS``) and the process's peak.

llama.cpp: ``llama-quantize`` of the F32 file to Q8_0 and Q4_0, then ``llama-bench -p 512 -n 128
-t 2`` (its decode starts from an empty context), peak RSS by ``/usr/bin/time``. Time to first
token: ``quanta model generate`` on an int4 folder, whole process, a prompt of about 64 tokens. The tools are
built by ``bench/_llama_cpp.py``. Prints a table, writes ``bench/out/model_speed.json``.
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

CONFIGS = ("float32", "bf16", "int8", "int4", "int4, 4-bit embedding", "default --bits 4 (GPTQ)")
PREFILL, PROMPT, DECODE = 512, 64, 128


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


#: how each quantized configuration is made (``quanta model quantize smollm2-unbinned`` flags)
QUANTIZE = {"int8": ["--method", "rtn", "--bits", "8", "--group-size", "0", "--sym"],
            "int4": ["--method", "rtn", "--bits", "4"],
            "int4, 4-bit embedding": ["--method", "rtn", "--bits", "4", "--embedding-bits", "4"],
            "default --bits 4 (GPTQ)": ["--bits", "4"]}


def quantize(flags: list[str], folder: Path) -> Path:
    """``smollm2-unbinned`` quantized with ``flags`` by the CLI into ``folder``."""
    subprocess.run([sys.executable, "-m", "quanta.cli", "model", "quantize", "smollm2-unbinned", "-o",
                    str(folder), *flags, "--json"], check=True, capture_output=True)
    return folder


def prepare(config: str, tmp: str):
    """The model of one configuration; a quantized one written by ``quanta model quantize``
    (RTN on a uniform grid: the method does not change the kernels; the plain ``--bits 4`` with
    its default GPTQ, whose folder shares its bytes out over int4 and int8 layers) and loaded
    from its folder, as users run it."""
    import torch

    from quanta.model.sources.load import load_model

    if Path(config).is_dir():  # a folder written before (--folder)
        loaded = load_model(config)
        return loaded, loaded.model
    if config in QUANTIZE:
        loaded = load_model(quantize(QUANTIZE[config], Path(tmp) / "q"))
        return loaded, loaded.model
    loaded = load_model("smollm2-unbinned")
    return loaded, loaded.model.to(torch.bfloat16) if config == "bf16" else loaded.model


def one(config: str, repeat: int) -> dict:
    """Measure one configuration (in this process)."""
    import gc

    import torch

    from quanta.model.eval.evaluate import peak_rss_mb, wikitext2_test_text
    from quanta.model.quantize.apply import count_by_path
    from quanta.model.runtime.generate import generate_ids

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        loaded, m = prepare(config, tmp)
    gc.collect()
    ids = loaded.tokenizer.encode(wikitext2_test_text()[:20000], add_special_tokens=False).ids
    prompt = [loaded.bos_id, *ids[: PREFILL - 1]]
    with torch.inference_mode():
        m(torch.tensor([prompt[:16]]), logits_to_keep=1)  # warm-up
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            m(torch.tensor([prompt]), logits_to_keep=1)
            best = min(best, time.perf_counter() - t0)
    dec, tokens = {}, {}
    for path in ("eager", "fast"):
        dec[path] = 0.0
        for _ in range(repeat):
            g = generate_ids(m, prompt[:PROMPT], max_tokens=DECODE + 1, temperature=0, fast=path == "fast")
            dec[path] = max(dec[path], (len(g.ids) - 1) / g.decode_s)
            tokens[path] = g.ids
    return {"config": config, "prefill_tokens_per_s": PREFILL / best,
            "decode_eager_tokens_per_s": dec["eager"], "decode_tokens_per_s": dec["fast"],
            "same_tokens": tokens["eager"] == tokens["fast"], "decode_path": g.path,
            "rss_mb": rss_mb(), "peak_rss_mb": peak_rss_mb(), "paths": count_by_path(m)}


def first_token() -> dict:
    """Whole-process time of ``quanta model generate`` on a quanta int4 folder (the default
    quantization's kernels; made once with RTN) for a prompt of about 64 tokens, one new token."""
    from quanta.model.eval.evaluate import wikitext2_test_text

    words = " ".join(wikitext2_test_text().split()[:48])
    with tempfile.TemporaryDirectory() as tmp:
        folder = quantize(QUANTIZE["int4"], Path(tmp) / "q4")
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "quanta.cli", "model", "generate", str(folder), words,
                              "--max-tokens", "1", "--temperature", "0", "--json"], check=True,
                             capture_output=True, text=True).stdout
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "prompt_tokens": json.loads(out)["prompt_tokens"]}


def llama_cpp(repeat: int) -> list[dict]:
    from bench._llama_cpp import ensure_built
    from quanta.model.sources import unbinned

    bins = ensure_built(("llama-quantize", "llama-bench"))
    src = unbinned.ensure()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for qtype in ("Q8_0", "Q4_0"):
            f = Path(tmp) / f"smollm2.{qtype}.gguf"
            subprocess.run([str(bins / "llama-quantize"), str(src), str(f), qtype, "2"], check=True,
                           capture_output=True)
            res = subprocess.run(["/usr/bin/time", "-f", "%M", str(bins / "llama-bench"), "-m", str(f),
                                  "-p", str(PREFILL), "-n", str(DECODE), "-t", "2", "-r", str(repeat),
                                  "-o", "json"], check=True, capture_output=True, text=True)
            tests = json.loads(res.stdout)
            speed = {("prefill" if t["n_prompt"] else "decode"): t["avg_ts"] for t in tests}
            rows.append({"config": f"llama.cpp {qtype}", "prefill_tokens_per_s": speed["prefill"],
                         "decode_tokens_per_s": speed["decode"], "rss_mb": None,
                         "peak_rss_mb": int(res.stderr.strip().splitlines()[-1]) / 1024,
                         "file_bytes": f.stat().st_size})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--skip-llama-cpp", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help="measure only this quanta folder (prefill, decode "
                    "eager and fast, memory) and print its JSON")
    args = ap.parse_args()
    if args.one or args.folder:
        print(json.dumps(one(args.one or str(args.folder), args.repeat)))
        return
    from bench._util import machine, write_json
    from quanta.render.tables import console, print_table

    rows = []
    for config in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", config, "--repeat", str(args.repeat)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        console.print(f"{config}: decode {rows[-1]['decode_tokens_per_s']:.1f} tokens/s")
    ttft = first_token()
    console.print(f"time to first token, whole process: {ttft['seconds']:.2f} s")
    note = ""
    if args.skip_llama_cpp:
        note = "llama.cpp rows skipped (--skip-llama-cpp)"
    else:
        rows += llama_cpp(args.repeat)
    by = {r["config"]: r for r in rows}
    bf16 = by["bf16"]["decode_eager_tokens_per_s"]

    def cell(r: dict, key: str, fmt: str = ".1f") -> str:
        return "—" if r.get(key) is None else format(r[key], fmt)

    table = [[r["config"], cell(r, "prefill_tokens_per_s", ".0f"), cell(r, "decode_eager_tokens_per_s"),
              cell(r, "decode_tokens_per_s"), f"{r['decode_tokens_per_s'] / bf16:.2f}×",
              {True: "yes", False: "NO", None: "—"}[r.get("same_tokens")],
              cell(r, "rss_mb", ".0f"), cell(r, "peak_rss_mb", ".0f")] for r in rows]
    print_table(f"SmolLM2-135M speed, 2 threads ({machine()}); prefill {PREFILL} tokens, decode "
                f"{DECODE} after {PROMPT}", ["model", "prefill tok/s", "decode eager tok/s",
                                             "decode fast tok/s", "fast × bf16 eager",
                                             "same tokens", "RSS MB", "peak RSS MB"], table, left=(0,))
    int4 = by["int4"]["decode_tokens_per_s"]
    targets = {"int4_decode_vs_bf16": int4 / bf16}
    if "llama.cpp Q4_0" in by:
        q40 = by["llama.cpp Q4_0"]["decode_tokens_per_s"]
        targets["int4_decode_vs_llama_cpp_q4_0"] = int4 / q40
        targets["int4_e4_decode_vs_llama_cpp_q4_0"] = by["int4, 4-bit embedding"]["decode_tokens_per_s"] / q40
    console.print(" · ".join(f"{k} {v:.2f}×" for k, v in targets.items())
                  + f" · time to first token {ttft['seconds']:.2f} s ({ttft['prompt_tokens']} prompt tokens, "
                  "whole process)" + (f" ({note})" if note else ""))
    targets["time_to_first_token_s"] = ttft["seconds"]
    write_json("model_speed", {"rows": rows, "targets": targets, "first_token": ttft, "note": note})


if __name__ == "__main__":
    main()
