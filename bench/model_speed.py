"""Prefill and decode speed of SmolLM2-135M: quanta (float32, bf16, int8, int4) against
llama.cpp's ``llama-bench`` (Q8_0, Q4_0 of the same weights), 2 threads, one run.

    python bench/model_speed.py [--skip-llama-cpp] [--repeat 3] [--folder QUANTA_FOLDER]
    python bench/model_speed.py --kernels [--repeat 3] [--chunks 10] [--only Q4_K_M,folder]
    python bench/model_speed.py --kernels --alternate 7 [--only Q4_K_M,folder]

``--kernels`` (issue 28): quanta's compiled kernels (``quanta model generate/eval`` on a GGUF file
or a quanta folder) against ``llama-bench`` on the same files — llama.cpp's Q4_0, Q4_K_M and Q8_0 of
the F32 weights and quanta's own ``--format gguf`` files (``--bits 4``, ``--type Q4_K_M``) — tg128
and pp512 at 1 and 2 threads, medians of ``--repeat``; quanta's default ``--bits 4`` folder on the
same kernels against llama.cpp's Q4_0 (llama.cpp reads no quanta folder); peak RSS against file +
KV cache; the KL divergence against the F32 weights through the kernels, through the weights-only
model (a GGUF file's dequantized PyTorch model, ``--eager``; a folder's every weight dequantized
exactly, float32 activations) and through llama.cpp (``llama-perplexity --kl-divergence``: its own
activation quantization) over ``--chunks`` windows of 512 tokens; whole-process time to first
token of ``quanta model generate`` on each (64-token prompt); a plot, ``docs/img/model_kernels.png``.

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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = ("float32", "bf16", "int8", "int4", "int4, 4-bit embedding", "default --bits 4 (GPTQ)")
PREFILL, PROMPT, DECODE = 512, 64, 128


def vm_hwm_mb() -> float:
    """This process's peak resident set (``VmHWM``), read without importing torch (the kernels'
    process never imports it; importing it to measure would add its own ~150 MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


# ---- the compiled kernels on GGUF files (issue 28) ----

#: the files: llama.cpp's (``llama-quantize`` of the F32 weights, no imatrix) and quanta's own
#: (``quanta model quantize smollm2-unbinned --format gguf`` with these flags: its defaults, GPTQ)
LLAMA_TYPES = ("Q4_0", "Q4_K_M", "Q8_0")
QUANTA_GGUF = {"quanta --bits 4": ["--bits", "4"], "quanta --type Q4_K_M": ["--type", "Q4_K_M"]}
#: quanta's default folder (``quantize smollm2-unbinned --bits 4``), measured against llama.cpp's Q4_0
FOLDER = "quanta --bits 4 folder"


def kernel_files(tmp: Path, bins: Path, only: tuple[str, ...] = ()) -> dict[str, Path]:
    """The files measured (``only``: those whose names contain one of these words; llama.cpp's
    Q4_0 always, the folder's peer)."""
    from quanta.model.sources import unbinned

    src = unbinned.ensure()
    files = {}
    wanted = [f"llama.cpp {q}" for q in LLAMA_TYPES] + list(QUANTA_GGUF) + [FOLDER]
    wanted = [n for n in wanted if not only or n == "llama.cpp Q4_0" or any(w in n for w in only)]
    for qtype in LLAMA_TYPES:
        if f"llama.cpp {qtype}" not in wanted:
            continue
        f = tmp / f"llama-{qtype}.gguf"
        subprocess.run([str(bins / "llama-quantize"), str(src), str(f), qtype, "2"], check=True,
                       capture_output=True)
        files[f"llama.cpp {qtype}"] = f
    for name, flags in QUANTA_GGUF.items():
        if name not in wanted:
            continue
        f = tmp / f"{name.replace(' ', '_').replace('-', '')}.gguf"
        subprocess.run([sys.executable, "-m", "quanta.cli", "model", "quantize", "smollm2-unbinned", "-o",
                        str(f), "--format", "gguf", *flags, "--json"], check=True, capture_output=True)
        files[name] = f
    if FOLDER not in wanted:
        return files
    folder = tmp / "default-folder"
    subprocess.run([sys.executable, "-m", "quanta.cli", "model", "quantize", "smollm2-unbinned", "-o",
                    str(folder), "--bits", "4", "--json"], check=True, capture_output=True)
    files[FOLDER] = folder
    return files


def open_kernels(path: str, threads: int):
    """A GGUF file or a quanta folder on the compiled kernels."""
    from quanta.model.runtime.native import open_native
    from quanta.model.runtime.native_folder import open_folder

    return open_folder(path, threads=threads) if Path(path).is_dir() else open_native(path, threads=threads)


def stored_mb(path: Path) -> float:
    """MB on disk: a file, or the files of a folder."""
    return (path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir())) / 2**20


def native_one(path: str, threads: int, repeat: int) -> dict:
    """quanta's kernels on one file in this process: pp512 (512 tokens from an empty cache) and
    tg128 (128 single-token steps from an empty cache, as llama-bench's tests), each ``repeat``
    times after a warm-up; medians; the process's peak RSS and the KV cache's bytes."""
    import statistics

    lm = open_kernels(path, threads)
    eng = lm.decoder(PREFILL)
    ids = list(range(1000, 1000 + PREFILL))
    eng.forward(ids[:16])  # warm-up: the pages of the map read once
    pp, tg = [], []
    for _ in range(repeat):
        eng.reset()
        t0 = time.perf_counter()
        eng.forward(ids)
        pp.append(PREFILL / (time.perf_counter() - t0))
        eng.reset()
        t0 = time.perf_counter()
        for i in range(DECODE):
            eng.forward([ids[i]])
        tg.append(DECODE / (time.perf_counter() - t0))
    cfg = lm.config
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * PREFILL * 4
    return {"pp512": statistics.median(pp), "tg128": statistics.median(tg), "peak_rss_mb": vm_hwm_mb(),
            "kv_mb": kv / 2**20, "file_mb": stored_mb(Path(path)),
            "resident_weights_mb": sum(t.n_bytes for t in lm.tensors.values()) / 2**20}


def llama_bench(bins: Path, path: Path, repeat: int, threads: str = "1,2") -> dict:
    """``llama-bench -p 512 -n 128 -t threads -r repeat``: medians of its samples per thread count."""
    import statistics

    res = subprocess.run(["/usr/bin/time", "-f", "%M", str(bins / "llama-bench"), "-m", str(path), "-p",
                          str(PREFILL), "-n", str(DECODE), "-t", threads, "-r", str(repeat), "-o", "json"],
                         check=True, capture_output=True, text=True)
    out: dict = {"peak_rss_mb": int(res.stderr.strip().splitlines()[-1]) / 1024}
    for t in json.loads(res.stdout):
        key = ("pp512" if t["n_prompt"] else "tg128", int(t["n_threads"]))
        out[key] = statistics.median(t.get("samples_ts") or [t["avg_ts"]])
    return out


def dense_kld(folder: Path, chunks: int) -> dict:
    """KLD and perplexity of a quanta folder's weights-only model (every weight dequantized
    exactly, float32 activations: ``load_quantized(dense=True)``) against the F32 weights."""
    from quanta.model.eval.harness import evaluate_loaded
    from quanta.model.formats.folder import load_quantized
    from quanta.model.sources.load import Loaded, load_model

    model, tok, cfg = load_quantized(folder, dense=True)
    rep = evaluate_loaded(Loaded(model, tok, "quanta", str(folder), {"quant_config": cfg}),
                          reference=load_model("smollm2-unbinned").model, chunks=chunks, speed=False)
    return {"kld": rep.measures["kld"], "perplexity": rep.measures["perplexity"]}


def accuracy(path: Path, chunks: int) -> dict:
    """KLD against the F32 weights (``smollm2-unbinned``) through quanta's kernels
    (``quanta model eval``) and through the weights-only model (a GGUF file's dequantized
    PyTorch model, ``eval --eager``; a folder's :func:`dense_kld`)."""
    out = {}
    runs = (("native", []),) if path.is_dir() else (("native", []), ("eager", ["--eager"]))
    if path.is_dir():
        out["eager"] = dense_kld(path, chunks)
    for name, extra in runs:
        res = subprocess.run([sys.executable, "-m", "quanta.cli", "model", "eval", str(path), "-r",
                              "smollm2-unbinned", "--chunks", str(chunks), "--no-speed", "--json", *extra],
                             check=True, capture_output=True, text=True)
        m = json.loads(res.stdout)["measures"]
        out[name] = {"kld": m["kld"], "perplexity": m["perplexity"]}
    return out


def llama_kld_base(bins: Path, tmp: Path, chunks: int) -> tuple[Path, Path]:
    """llama.cpp's reference logits of the F32 weights over ``chunks`` windows of 512 WikiText-2
    test tokens (``llama-perplexity --kl-divergence-base``; its windows are quanta-ppl/1's) and the text."""
    from bench.model_frontier import llama
    from quanta.model.eval.evaluate import wikitext2_test_text
    from quanta.model.sources import unbinned

    text, base = tmp / "test.txt", tmp / "base.kld"
    text.write_text(wikitext2_test_text(), encoding="utf-8")
    llama(bins, "llama-perplexity", "-m", str(unbinned.ensure()), "-f", str(text), "-c", "512", "--chunks",
          str(chunks), "-t", "2", "--kl-divergence-base", str(base))
    return base, text


def first_token_of(path: Path) -> float:
    """Whole-process seconds of ``quanta model generate FILE`` (about 64 prompt tokens, one new token)."""
    from quanta.model.eval.evaluate import wikitext2_test_text

    words = " ".join(wikitext2_test_text().split()[:48])
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "quanta.cli", "model", "generate", str(path), words, "--max-tokens",
                    "1", "--temperature", "0", "--json"], check=True, capture_output=True)
    return time.perf_counter() - t0


def kernels_bench(repeat: int, chunks: int, only: tuple[str, ...] = ()) -> dict:
    """Every file through quanta's kernels and llama-bench, 1 and 2 threads; a table, a plot."""
    from bench._llama_cpp import ensure_built
    from bench._util import machine
    from bench.model_frontier import llama_kld
    from quanta.render.tables import console, print_table

    bins = ensure_built(("llama-quantize", "llama-bench", "llama-perplexity"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = kernel_files(Path(tmp), bins, only)
        base, text = llama_kld_base(bins, Path(tmp), chunks)
        ttft = {name: min(first_token_of(f) for _ in range(repeat)) for name, f in files.items()}
        for name, f in files.items():
            row = {"file": name, "bytes": int(stored_mb(f) * 2**20), "first_token_s": ttft[name]}
            for threads in (1, 2):
                out = subprocess.run([sys.executable, __file__, "--native-one", str(f), "--threads",
                                      str(threads), "--repeat", str(repeat)],
                                     check=True, capture_output=True, text=True).stdout
                q = json.loads(out.strip().splitlines()[-1])
                row[f"quanta_t{threads}"] = q
            # a folder against llama.cpp's Q4_0 (the target), measured on that file
            ref = llama_bench(bins, files["llama.cpp Q4_0"] if f.is_dir() else f, repeat)
            for threads in (1, 2):
                row[f"llama_t{threads}"] = {test: ref[(test, threads)] for test in ("pp512", "tg128")}
            row["llama_peak_rss_mb"] = ref["peak_rss_mb"]
            row["accuracy"] = accuracy(f, chunks)
            if not f.is_dir():  # its own kernels
                row["accuracy"]["llama_cpp"] = {"kld": llama_kld(bins, f, base, text, chunks)}
            rows.append(row)
            console.print(f"{name}: tg128 2 threads quanta {row['quanta_t2']['tg128']:.1f} vs llama.cpp "
                          f"{row['llama_t2']['tg128']:.1f} tok/s")
    table = []
    for r in rows:
        for t in (1, 2):
            q, lc = r[f"quanta_t{t}"], r[f"llama_t{t}"]
            acc = r["accuracy"]
            peer = f"{acc['llama_cpp']['kld']:.4f}" if "llama_cpp" in acc else "—"
            once = [f"{q['peak_rss_mb']:.0f} ({q['file_mb']:.0f} + {q['kv_mb']:.0f} KV)",
                    f"{acc['native']['kld']:.4f} / {acc['eager']['kld']:.4f} / {peer}",
                    f"{r['first_token_s']:.2f}"]
            label = r["file"] + (" (llama.cpp: its Q4_0)" if r["file"] == FOLDER else "")
            table.append([label, str(t), f"{q['tg128']:.1f}", f"{lc['tg128']:.1f}",
                          f"{q['tg128'] / lc['tg128']:.2f}×", f"{q['pp512']:.0f}", f"{lc['pp512']:.0f}",
                          f"{q['pp512'] / lc['pp512']:.2f}×", *(once if t == 2 else ["", "", ""])])
    print_table(f"quanta's kernels against llama-bench on the same GGUF files, SmolLM2-135M ({machine()}); "
                f"medians of {repeat}",
                ["file", "threads", "tg128 quanta", "tg128 llama.cpp", "ratio", "pp512 quanta",
                 "pp512 llama.cpp", "ratio", "peak RSS MB (file + KV)",
                 "KLD quanta kernels / weights-only / llama.cpp", "first token s"],
                table, left=(0,))
    if not only:  # the plot shows every file
        plot_kernels(rows)
    return {"rows": rows, "repeat": repeat, "chunks": chunks}


def alternating_bench(rounds: int, only: tuple[str, ...] = ()) -> dict:
    """2 threads, tg128 and pp512: quanta's kernels and ``llama-bench`` (``-r 1``) taking turns on
    each file, ``rounds`` times, medians — this machine's speed drifts by 10–20 % within minutes,
    which separate runs of each side (the main table) fold into their ratio; alternating spreads
    the drift over both. A folder's peer is llama.cpp's Q4_0 file, as in the main table."""
    import statistics

    from bench._llama_cpp import ensure_built
    from bench._util import machine
    from quanta.render.tables import print_table

    bins = ensure_built(("llama-quantize", "llama-bench"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = kernel_files(Path(tmp), bins, only)
        for name, f in files.items():
            got: dict[str, list[float]] = {k: [] for k in ("q_tg", "q_pp", "l_tg", "l_pp")}
            for _ in range(rounds):
                out = subprocess.run([sys.executable, __file__, "--native-one", str(f), "--threads", "2",
                                      "--repeat", "1"], check=True, capture_output=True, text=True).stdout
                q = json.loads(out.strip().splitlines()[-1])
                ref = llama_bench(bins, files["llama.cpp Q4_0"] if f.is_dir() else f, 1, threads="2")
                got["q_tg"].append(q["tg128"])
                got["q_pp"].append(q["pp512"])
                got["l_tg"].append(ref[("tg128", 2)])
                got["l_pp"].append(ref[("pp512", 2)])
            med = {k: statistics.median(v) for k, v in got.items()}
            rows.append({"file": name, "rounds": rounds, "samples": got, "medians": med})
    table = [[r["file"] + (" (llama.cpp: its Q4_0)" if r["file"] == FOLDER else ""),
              f"{r['medians']['q_tg']:.1f}", f"{r['medians']['l_tg']:.1f}",
              f"{r['medians']['q_tg'] / r['medians']['l_tg']:.2f}×",
              f"{min(a / b for a, b in zip(r['samples']['q_tg'], r['samples']['l_tg'])):.2f}–"
              f"{max(a / b for a, b in zip(r['samples']['q_tg'], r['samples']['l_tg'])):.2f}×",
              f"{r['medians']['q_pp']:.0f}", f"{r['medians']['l_pp']:.0f}",
              f"{r['medians']['q_pp'] / r['medians']['l_pp']:.2f}×"] for r in rows]
    print_table(f"quanta's kernels and llama-bench taking turns, 2 threads, {rounds} rounds, medians "
                f"({machine()})",
                ["file", "tg128 quanta", "tg128 llama.cpp", "ratio", "ratio per round", "pp512 quanta",
                 "pp512 llama.cpp", "ratio"], table, left=(0,))
    return {"rows": rows, "rounds": rounds}


def plot_kernels(rows: list[dict]) -> Path:
    """Decode and prefill tokens/s per file, quanta against llama.cpp, 2 threads:
    ``docs/img/model_kernels.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(rows))
    for ax, test in zip(axes, ("tg128", "pp512")):
        ax.bar(x - 0.2, [r["quanta_t2"][test] for r in rows], 0.4, label="quanta kernels")
        ax.bar(x + 0.2, [r["llama_t2"][test] for r in rows], 0.4, label="llama.cpp (llama-bench)")
        ax.set_xticks(x, [r["file"] for r in rows], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("tokens/s")
        ax.set_title(f"{test}, 2 threads, SmolLM2-135M")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = ROOT / "docs" / "img" / "model_kernels.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--skip-llama-cpp", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--native-one", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--kernels", action="store_true", help="only quanta's compiled kernels on GGUF files "
                    "against llama-bench (tg128, pp512, 1 and 2 threads), the KLD through them, time to "
                    "first token")
    ap.add_argument("--chunks", type=int, default=10, help="--kernels: evaluation windows for the KLD")
    ap.add_argument("--only", default="", help="--kernels: only the files whose names contain one of these "
                    "comma-separated words (llama.cpp's Q4_0 always: the folder's peer), e.g. Q4_K_M,folder")
    ap.add_argument("--alternate", type=int, default=0, metavar="N",
                    help="--kernels: instead of the full table, quanta and llama-bench taking turns N "
                    "times on each file (2 threads, tg128 and pp512; medians)")
    ap.add_argument("--folder", type=Path, help="measure only this quanta folder (prefill, decode "
                    "eager and fast, memory) and print its JSON")
    args = ap.parse_args()
    if args.native_one:
        print(json.dumps(native_one(args.native_one, args.threads, args.repeat)))
        return
    if args.one or args.folder:
        print(json.dumps(one(args.one or str(args.folder), args.repeat)))
        return
    if args.kernels:
        from bench._util import write_json

        only = tuple(w for w in args.only.split(",") if w)
        if args.alternate:
            write_json("model_kernels_alternate", alternating_bench(args.alternate, only))
            return
        write_json("model_kernels" + ("_only" if only else ""), kernels_bench(args.repeat, args.chunks, only))
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
