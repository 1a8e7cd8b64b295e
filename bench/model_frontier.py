"""quanta's GGUF files against llama.cpp's own, on ``smollm2-unbinned``, in one run.

    python bench/model_frontier.py [--chunks 40]
                                   [--types Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_1,Q4_0,IQ4_XS,Q3_K_M,Q3_K_S,Q2_K]
                                   [--no-uniform] [--no-mixed] [--no-defaults]

(any llama.cpp file type quanta makes may be listed: also IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ3_XXS,
IQ3_XS, IQ3_S, IQ3_M, Q4_K_S, Q5_K_S, …)

Builds llama.cpp's tools on first use (bench/_llama_cpp.py, ~20 min, cached outside the repo),
makes an importance matrix from quanta's default calibration text (the WikiText-2 *valid* slice
shipped in the package: 64 chunks of 256 tokens) and quantizes ``smollm2-unbinned`` with it to
each llama.cpp type. quanta writes its own GGUF files, each with one command as a user runs it
(``--format gguf --method gptq``, default calibration): uniform Q8_0 and Q4_1, and ``--type T`` for
each llama.cpp file type T (the file no larger than llama.cpp's, every tensor's type — K-quants
included — chosen by the measured sensitivity); and the two plain defaults, ``--bits 4`` as a
quanta folder and as GGUF. Every file is scored by quanta's evaluator
(quanta-ppl/1, KL divergence against ``smollm2-unbinned``); quanta's ``--type Q4_K_M`` and
llama.cpp's Q4_K_M are also scored by ``llama-perplexity --kl-divergence`` (which also rounds
activations to 8 bits). Also checks quanta's table of llama.cpp's rules
(:mod:`quanta.model.quantize.presets`): ``--type T --uniform --dry-run`` gives every tensor the type
``llama-quantize`` gave it. Prints the tables and the frontier (at each llama.cpp size, quanta's
best file of at most that size), writes bench/out/model_frontier.json and the size–KLD plot
bench/out/model_frontier.png.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._llama_cpp import ensure_built  # noqa: E402
from bench._util import OUT, machine, write_json  # noqa: E402
from quanta.model.eval.evaluate import wikitext2_test_text, windows  # noqa: E402
from quanta.model.eval.harness import Reference  # noqa: E402
from quanta.model.quantize.calibrate import default_text  # noqa: E402
from quanta.model.sources import unbinned  # noqa: E402
from quanta.model.sources.load import load_model  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

QUANTA = (("quanta Q8_0 (GPTQ)", ["--bits", "8", "--sym", "--group-size", "32"]),
          ("quanta Q4_1 (GPTQ)", ["--bits", "4", "--group-size", "32"]))


#: the plain commands of the "defaults" target: a quanta folder, nothing but --bits 4; and the
#: same written as GGUF (--format gguf --bits 4: llama.cpp's Q4_0 size, types by sensitivity)
DEFAULTS = ("quanta defaults (--bits 4, quanta folder)", ["--bits", "4"])
DEFAULTS_GGUF = ("quanta defaults (--format gguf --bits 4)", ["--bits", "4"])


def nbytes(path: Path) -> int:
    """A file's size, or the total of a folder's files."""
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def quanta_quantize(out: Path, args: list[str]) -> dict:
    """One ``quanta model quantize`` process, as a user runs it; its JSON report."""
    import json

    gguf = ["--format", "gguf", "--method", "gptq"] if out.suffix == ".gguf" else []
    cmd = [sys.executable, "-m", "quanta.cli", "model", "quantize", "smollm2-unbinned", "-o", str(out),
           *gguf, "--json", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"quanta failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def llama(bin_dir: Path, tool: str, *args: str) -> str:
    r = subprocess.run([str(bin_dir / tool), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{tool} failed: {r.stderr[-2000:]}")
    return r.stdout + r.stderr


def llama_kld(bin_dir: Path, model: Path, base: Path, text: Path, chunks: int) -> float:
    out = llama(bin_dir, "llama-perplexity", "-m", str(model), "-f", str(text), "-c", "512",
                "--chunks", str(chunks), "-t", "2", "--kl-divergence-base", str(base), "--kl-divergence")
    m = re.search(r"Mean\s+KLD:\s+([0-9.]+)", out)
    if not m:
        raise SystemExit(f"no KLD in llama-perplexity's output: {out[-1500:]}")
    return float(m.group(1))


def llama_imatrix(bin_dir: Path, ref_path: Path, tmp: Path) -> Path:
    """llama.cpp's importance matrix of ``ref_path`` from quanta's default calibration text (64
    chunks of 256 tokens), written in ``tmp``."""
    calib = tmp / "calib.txt"
    calib.write_text(default_text(), encoding="utf-8")
    imatrix = tmp / "imatrix.gguf"
    llama(bin_dir, "llama-imatrix", "-m", str(ref_path), "-f", str(calib), "-o", str(imatrix), "-c", "256",
          "--chunks", "64", "-t", "2", "--no-ppl")
    return imatrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--types", default="Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_1,Q4_0,IQ4_XS,Q3_K_M,Q3_K_S,Q2_K")
    ap.add_argument("--no-uniform", action="store_true",
                    help="skip quanta's uniform Q8_0 and Q4_1 files (the mixed ones and the defaults stay)")
    ap.add_argument("--no-mixed", action="store_true",
                    help="skip quanta's mixed files (for the defaults target alone)")
    ap.add_argument("--no-defaults", action="store_true",
                    help="skip the two plain --bits 4 commands (for the --type files alone)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    bin_dir = ensure_built()
    ref_path = unbinned.ensure()
    tmp = Path(tempfile.mkdtemp(prefix="frontier-"))
    test = tmp / "test.txt"
    test.write_text(wikitext2_test_text(), encoding="utf-8")
    imatrix = llama_imatrix(bin_dir, ref_path, tmp)
    files: list[tuple[str, Path, str]] = []
    for qtype in args.types.split(","):
        out = tmp / f"llama_{qtype}.gguf"
        llama(bin_dir, "llama-quantize", "--imatrix", str(imatrix), str(ref_path), str(out), qtype, "2")
        files.append((f"llama.cpp {qtype} + imatrix", out, "llama.cpp"))
    times = {}
    jobs = [] if args.no_uniform else [(name, f"quanta_{name.split()[1]}.gguf", opts)
                                       for name, opts in QUANTA]
    if not args.no_defaults:
        jobs.append((DEFAULTS[0], "quanta_defaults", DEFAULTS[1]))
        jobs.append((DEFAULTS_GGUF[0], "quanta_defaults.gguf", DEFAULTS_GGUF[1]))
    rules = [rules_check(path, name.split()[1]) for name, path, _ in files]
    print_table("llama.cpp's rules: quanta's --type T --uniform plan against llama-quantize's file",
                ["type", "tensors", "same type", "differ"],
                [[r["type"], r["tensors"], r["same"], ", ".join(r["differ"][:4]) or "—"] for r in rules],
                left=(0, 3))
    jobs += [] if args.no_mixed else [(f"quanta --type {qt}", f"quanta_type_{qt}.gguf", ["--type", qt])
                                      for name, _, _ in list(files) for qt in [name.split()[1]]]
    reports = {}
    for name, stem, opts in jobs:
        out = tmp / stem
        t0 = time.perf_counter()
        reports[name] = rep = quanta_quantize(out, opts)
        times[name] = time.perf_counter() - t0
        files.append((name, out, "quanta"))
        console.print(f"{name}: {nbytes(out) / 1e6:.1f} MB in {times[name]:.0f} s, "
                      f"peak RSS {rep['peak_rss_mb']:.0f} MB" +
                      (f"; {rep['mixed']['summary']}" if rep.get("mixed") else ""))
    ref = load_model(ref_path)
    wins = windows(ref.tokenizer, wikitext2_test_text(), bos_id=ref.bos_id, n_chunks=args.chunks)
    reference = Reference(ref.model, wins)
    del ref
    rows = []
    for name, path, side in files:
        m = load_model(path)
        s = reference.score(m.model)
        rows.append({"name": name, "side": side, "bytes": nbytes(path), "kld": s.kld,
                     "top1": s.top1, "perplexity": s.perplexity,
                     "quantize_s": times.get(name),
                     "peak_rss_mb": reports[name]["peak_rss_mb"] if name in reports else None,
                     "mixed": reports[name].get("mixed") if name in reports else None})
        console.print(f"{name}: {nbytes(path) / 1e6:.1f} MB, KLD {s.kld:.4f}")
        del m
    # llama.cpp's own measurement of quanta's file at Q4_K_M's size and of llama.cpp's Q4_K_M
    kbase = tmp / "base.kld"
    llama(bin_dir, "llama-perplexity", "-m", str(ref_path), "-f", str(test), "-c", "512", "--chunks",
          str(args.chunks), "-t", "2", "--kl-divergence-base", str(kbase))
    checks = {n: llama_kld(bin_dir, p, kbase, test, args.chunks) for n, p, _ in files
              if n in ("quanta --type Q4_K_M", "llama.cpp Q4_K_M + imatrix")}
    for r in rows:
        r["llama_perplexity_kld"] = checks.get(r["name"])
    rows.sort(key=lambda r: r["bytes"])
    print_table(f"SmolLM2-135M-unbinned: file size against KL divergence ({machine()}, "
                f"{args.chunks}×512 test tokens)",
                ["file", "MB", "KLD (quanta-ppl/1)", "top-1", "PPL", "KLD (llama-perplexity)"],
                [[r["name"], f"{r['bytes'] / 1e6:.1f}", f"{r['kld']:.4f}", f"{100 * r['top1']:.1f}%",
                  f"{r['perplexity']:.2f}",
                  "—" if r["llama_perplexity_kld"] is None else f"{r['llama_perplexity_kld']:.4f}"]
                 for r in rows], left=(0,))
    frontier = []
    for r in (r for r in rows if r["side"] == "llama.cpp"):
        best = min((q for q in rows if q["side"] == "quanta" and q["bytes"] <= r["bytes"]),
                   key=lambda q: q["kld"], default=None)
        frontier.append({"llama": r["name"], "bytes": r["bytes"], "llama_kld": r["kld"],
                         "quanta": best and best["name"], "quanta_bytes": best and best["bytes"],
                         "quanta_kld": best and best["kld"], "ratio": best and best["kld"] / r["kld"]})
    print_table("frontier: quanta's best file of at most each llama.cpp size (target: ratio ≤ 0.5)",
                ["llama.cpp file", "MB", "KLD", "quanta's best ≤ that size", "MB", "KLD", "ratio"],
                [[f["llama"], f"{f['bytes'] / 1e6:.1f}", f"{f['llama_kld']:.4f}", f["quanta"] or "—",
                  f"{(f['quanta_bytes'] or 0) / 1e6:.1f}", f"{f['quanta_kld'] or 0:.4f}",
                  "—" if f["ratio"] is None else f"{f['ratio']:.2f}×"] for f in frontier], left=(0, 3))
    by = {r["name"]: r for r in rows}
    presets = [{"type": t, "llama_bytes": lm["bytes"], "quanta_bytes": q["bytes"], "llama_kld": lm["kld"],
                "quanta_kld": q["kld"], "types": reports[q["name"]]["mixed"]["summary"]}
               for t in args.types.split(",") if f"quanta --type {t}" in by
               for lm, q in [(by[f"llama.cpp {t} + imatrix"], by[f"quanta --type {t}"])]]
    print_table("--type T against llama.cpp's T + imatrix (no larger; KLD ratio)",
                ["type", "llama.cpp bytes", "quanta bytes", "no larger", "KLD ratio", "quanta's types"],
                [[p["type"], f"{p['llama_bytes']:,}", f"{p['quanta_bytes']:,}",
                  "yes" if p["quanta_bytes"] <= p["llama_bytes"] else "NO",
                  f"{p['quanta_kld'] / p['llama_kld']:.2f}×", str(p["types"])] for p in presets], left=(0, 5))
    targets = {name: defaults_target(rows, name) for name in (DEFAULTS[0], DEFAULTS_GGUF[0])}
    for name, t in targets.items():
        if t:
            console.print(f"defaults target, {name}: {t['bytes']:,} bytes (Q4_0: {t['q4_0_bytes']:,}), "
                          f"KLD {t['kld']:.4f} (Q4_K_M: {t['q4_k_m_kld']:.4f}): "
                          + ("met" if t["met"] else "missed"))
    plot(rows)
    write_json("model_frontier", {"rows": rows, "frontier": frontier, "defaults_target": targets,
                                  "presets": presets, "rules": rules,
                                  "reference_perplexity": reference.perplexity})


def rules_check(llama_file: Path, qtype: str) -> dict:
    """quanta's plan of ``--type qtype --uniform`` (a dry run) against the tensor types of
    llama.cpp's file of that type."""
    import json

    from gguf import GGUFReader

    from quanta.model.arch import LLAMA

    r = subprocess.run([sys.executable, "-m", "quanta.cli", "model", "quantize", "smollm2-unbinned", "-o",
                        "x.gguf", "--type", qtype, "--uniform", "--dry-run", "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"quanta's dry run failed: {r.stderr[-2000:]}")
    plan = {e["name"]: e["format"] for e in json.loads(r.stdout)["entries"] if e["method"]}
    theirs = {}
    for t in GGUFReader(llama_file).tensors:
        hf = LLAMA.hf_name(t.name)[0]
        if hf and t.tensor_type.name not in ("F32", "F16"):
            theirs[hf.removesuffix(".weight")] = t.tensor_type.name
    differ = [f"{n}: {plan.get(n)} vs {k}" for n, k in theirs.items() if plan.get(n) != k]
    return {"type": qtype, "tensors": len(theirs), "same": len(theirs) - len(differ), "differ": differ}


def defaults_target(rows: list[dict], name: str) -> dict | None:
    """A plain ``--bits 4`` command's file (row ``name``) against its target: no larger than
    llama.cpp's Q4_0 file, KL divergence no higher than llama.cpp's Q4_K_M (None when the run
    lacks one of the three)."""
    by = {r["name"]: r for r in rows}
    d, q40, q4km = (by.get(n) for n in (name, "llama.cpp Q4_0 + imatrix", "llama.cpp Q4_K_M + imatrix"))
    if not (d and q40 and q4km):
        return None
    return {"bytes": d["bytes"], "kld": d["kld"], "q4_0_bytes": q40["bytes"], "q4_k_m_kld": q4km["kld"],
            "met": d["bytes"] <= q40["bytes"] and d["kld"] <= q4km["kld"]}


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    series = (("llama.cpp + imatrix", "o--", lambda r: r["side"] == "llama.cpp"),
              ("quanta --type (llama.cpp's size, types chosen by sensitivity)", "s-",
               lambda r: "--type" in r["name"]),
              ("quanta uniform / plain --bits 4", "D",
               lambda r: r["side"] == "quanta" and "--type" not in r["name"]))
    for label, style, pick in series:
        pts = sorted((r["bytes"] / 1e6, r["kld"], r["name"]) for r in rows if pick(r))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        for x, y, name in pts:
            if "--type" not in name:
                ax.annotate(name.split()[1].split("(")[0] if name.split()[1] != "defaults" else "--bits 4",
                            (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("file size (MB)")
    ax.set_ylabel("KL divergence to smollm2-unbinned")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / "model_frontier.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
