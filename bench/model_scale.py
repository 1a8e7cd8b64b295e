"""quanta and llama.cpp on models of 1–8 B-parameter shapes, side by side (issue 25): wall time
and peak resident memory (GNU time) of each whole command, on this machine.

    python bench/model_scale.py [--shape llama-3.2-1b] [--only quanta,llama,resume,dryrun]

For the shape (bench/make_model.py writes its seeded random-weight bf16 folder into the cache
once), the rows are:

* ``quanta --dry-run``: the plan's predicted time and peak memory;
* ``quanta`` default (``--bits 4``: GPTQ, the uniform file's bytes shared out by sensitivity,
  64 windows × 256 tokens of the shipped WikiText-2 slice) into a quanta folder;
* (``--only …,q4km``) ``quanta --type Q4_K_M --uniform --method imatrix`` (llama.cpp's types)
  into a GGUF;
* llama.cpp's pipeline on the same text (64 chunks of 256 tokens; ``--windows N`` sets both
  sides' count, e.g. 16 for the 8 B shape): ``convert_hf_to_gguf.py
  --outtype bf16``, ``llama-imatrix``, ``llama-quantize --imatrix … Q4_K_M`` (the 0.3.36 build
  of bench/_llama_cpp.py), summed;
* first blocks (``--only blocks``, meant for the Llama-3.1-8B shape): ``--method gptq --uniform``
  run with ``--resume`` until four blocks are kept, then stopped (SIGTERM); the seconds to each
  kept block (the work folder's files), the peak resident memory so far (``VmHWM``), and
  ``--dry-run``'s whole-run prediction against the extrapolation from those blocks;
* resume (``--only resume``, on the SmolLM2-135M shape, 30 blocks): a ``--resume`` run killed
  (SIGKILL) when a block drawn at random (seed 0) is kept, then resumed; its bytes against an
  uninterrupted run's;
* SmolLM2 (``--only smollm2 --baseline DIR``: ``DIR`` a clone of an earlier commit with its own
  ``.venv``): the default ``--bits 4`` on ``smollm2-unbinned`` (real weights, a GGUF source
  loaded whole) by this tree and by the baseline in the same run — wall time, peak memory,
  bytes, and KLD against the float model (``quanta model eval``, 40 × 512 WikiText-2 test tokens).

Random weights measure time and memory, never quality. Results: bench/out/model_scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._llama_cpp import VERSION, ensure_built  # noqa: E402
from bench._util import machine, write_json  # noqa: E402
from quanta.model.sources.unbinned import cache_dir  # noqa: E402

QUANTA = [str(Path(sys.executable).parent / "quanta")]


def model_folder(shape: str) -> Path:
    """The shape's random-weight folder (made once, in the cache)."""
    d = cache_dir() / "bench-models" / shape
    if not d.exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_model.py"), shape, str(d)], check=True)
    return d


def gnu_time(cmd: list[str], **kw: object) -> dict:
    """Run ``cmd`` under GNU time: wall seconds, peak RSS (MB), stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        r = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name, *cmd], capture_output=True,
                           text=True, **kw)
        if r.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-3000:]}")
        wall, rss_kb = tf.read().split()[-2:]
    return {"wall_s": float(wall), "peak_rss_mb": int(rss_kb) / 1000, "stdout": r.stdout}


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
        h.update(f.name.encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def quanta_rows(src: Path, tmp: Path, only: set[str], windows: int = 64) -> list[dict]:
    rows = []
    calib = [] if windows == 64 else ["--calib-samples", str(windows)]
    if "dryrun" in only:
        r = gnu_time([*QUANTA, "model", "quantize", str(src), "-o", str(tmp / "plan"), "--dry-run", "--json"])
        plan = json.loads(r["stdout"])
        rows.append({"name": "quanta --dry-run (default)", "wall_s": r["wall_s"],
                     "peak_rss_mb": r["peak_rss_mb"], "predicted_s": plan["cost"]["seconds"],
                     "predicted_peak_mb": plan["cost"]["peak_bytes"] / 1e6})
    jobs = [("default", "quanta --bits 4 (default: GPTQ, shared bytes)", tmp / "q4", []),
            ("q4km", f"quanta --type Q4_K_M --uniform --method imatrix ({windows} × 256 tokens)",
             tmp / "q4km.gguf", ["--type", "Q4_K_M", "--uniform", "--method", "imatrix", *calib])]
    for key, name, out, extra in jobs:
        if key in only:
            r = gnu_time([*QUANTA, "model", "quantize", str(src), "-o", str(out), "--json",
                          *(extra if key == "q4km" else [*extra, *calib])])
            rep = json.loads(r["stdout"])
            rows.append({"name": name, "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
                         "bytes": rep.get("folder_bytes"), "predicted_s": rep.get("planned_s"),
                         "predicted_peak_mb": rep.get("planned_peak_mb")})
            print(json.dumps(rows[-1]), flush=True)
            if out.is_dir():
                shutil.rmtree(out)
            else:
                out.unlink(missing_ok=True)
    return rows


def llama_rows(src: Path, tmp: Path, windows: int = 64) -> list[dict]:
    """llama.cpp's pipeline: convert (bf16), imatrix on the shipped text, quantize Q4_K_M."""
    from bench.model_families import converter
    from quanta.model.quantize.calibrate import default_text

    bin_dir = ensure_built()
    script, gguf_py = converter()
    calib = tmp / "calib.txt"
    calib.write_text(default_text(), encoding="utf-8")
    bf16, imatrix, out = tmp / "model-bf16.gguf", tmp / "imatrix.gguf", tmp / "llama-q4km.gguf"
    env = {"PYTHONPATH": str(gguf_py), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    steps = [("convert_hf_to_gguf.py --outtype bf16",
              [sys.executable, str(script), str(src), "--outtype", "bf16", "--outfile", str(bf16)], env),
             (f"llama-imatrix ({windows} × 256 tokens)",
              [str(bin_dir / "llama-imatrix"), "-m", str(bf16), "-f", str(calib), "-o", str(imatrix),
               "-c", "256", "--chunks", str(windows), "-t", "2", "--no-ppl"], None),
             ("llama-quantize --imatrix Q4_K_M",
              [str(bin_dir / "llama-quantize"), "--imatrix", str(imatrix), str(bf16), str(out),
               "Q4_K_M", "2"], None)]
    rows = []
    for name, cmd, e in steps:
        r = gnu_time(cmd, env=e) if e else gnu_time(cmd)
        rows.append({"name": f"llama.cpp {name}", "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]})
        print(json.dumps(rows[-1]), flush=True)
    rows.append({"name": "llama.cpp pipeline (sum; peak of the three)",
                 "wall_s": sum(r["wall_s"] for r in rows), "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
                 "bytes": out.stat().st_size})
    for f in (bf16, imatrix, out):  # an 8 B model's bf16 file is 16 GB: the disk is needed next
        f.unlink(missing_ok=True)
    return rows


def dry_run(args: list[str]) -> dict:
    """The plan's predictions (``--dry-run --json``) for the quantize command ``args``."""
    r = subprocess.run([*QUANTA, *args, "--dry-run", "--json"], capture_output=True, text=True, check=True)
    cost = json.loads(r.stdout)["cost"]
    return {"predicted_s": cost["seconds"], "predicted_peak_mb": cost["peak_bytes"] / 1e6}


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1000
    return float("nan")


def first_blocks_row(src: Path, tmp: Path, blocks: int = 4) -> dict:
    """GPTQ until ``blocks`` blocks are kept (``--resume``'s work folder), stopped; extrapolated."""
    from quanta.model.quantize.resume import work_folder

    out = tmp / "gptq"
    args = ["model", "quantize", str(src), "-o", str(out), "--method", "gptq", "--uniform"]
    plan = dry_run(args)
    n = json.loads((src / "config.json").read_text())["num_hidden_layers"]
    work = work_folder(out)
    t0 = time.perf_counter()
    proc = subprocess.Popen([*QUANTA, *args, "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kept: list[float] = []
    peak = 0.0
    while len(kept) < blocks and proc.poll() is None:
        if (work / f"block-{len(kept):04d}.safetensors").exists():
            kept.append(time.perf_counter() - t0)
            print(f"block {len(kept) - 1} kept after {kept[-1]:.1f} s", flush=True)
        peak = max(peak, _peak_mb(proc.pid))
        time.sleep(0.2)
    if proc.poll() is not None:
        raise SystemExit(f"quanta stopped early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    shutil.rmtree(work, ignore_errors=True)
    per_block = (kept[-1] - kept[0]) / (len(kept) - 1)
    whole = kept[0] + (n - 1) * per_block  # the output's writing left out
    return {"name": f"quanta --method gptq --uniform, first {blocks} of {n} blocks", "block_s": kept,
            "per_block_s": per_block, "extrapolated_s": whole, "wall_s": kept[-1], "peak_rss_mb": peak,
            "exit_on_sigterm": proc.returncode, **plan}


def resume_row(tmp: Path) -> dict:
    """Kill a ``--resume`` run when a random block is kept, resume, compare bytes."""
    from quanta.model.quantize.resume import work_folder

    src = model_folder("smollm2-135m")
    ref, out = tmp / "ref", tmp / "out"
    args = ["model", "quantize", str(src), "--json"]
    t_ref = gnu_time([*QUANTA, *args, "-o", str(ref)])
    ref_rep = json.loads(t_ref["stdout"])
    blocks = json.loads((src / "config.json").read_text())["num_hidden_layers"]
    block = random.Random(0).randrange(blocks - 1)
    work = work_folder(out)
    marker = work / f"block-{block:04d}.safetensors"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*QUANTA, *args, "-o", str(out), "--resume"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while not marker.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = time.perf_counter() - t0
    left = sorted(p.name for p in work.iterdir()) if work.exists() else []
    t_res = gnu_time([*QUANTA, *args, "-o", str(out), "--resume"])
    same = digest(out) == digest(ref)
    return {"name": f"resume: killed when block {block} of {blocks} was kept, then --resume", "block": block,
            "killed_after_s": killed_after, "output_existed_after_kill": False, "work_files": len(left),
            "uninterrupted_s": t_ref["wall_s"], "uninterrupted_peak_mb": t_ref["peak_rss_mb"],
            "predicted_s": ref_rep.get("planned_s"), "predicted_peak_mb": ref_rep.get("planned_peak_mb"),
            "resumed_s": t_res["wall_s"],
            "peak_rss_mb": t_res["peak_rss_mb"], "byte_identical": same, "work_left": work.exists()}


def smollm2_rows(tmp: Path, baseline: Path | None) -> list[dict]:
    """The default on smollm2-unbinned by this tree (and ``baseline``), with its KLD."""
    rows = []
    trees = [("this tree", QUANTA, ROOT)]
    if baseline:
        trees.append(("baseline " + str(baseline), [str(baseline / ".venv/bin/quanta")], baseline))
    for label, cmd, cwd in trees:
        out = tmp / f"smol-{len(rows)}"
        r = gnu_time([*cmd, "model", "quantize", "smollm2-unbinned", "-o", str(out), "--json"], cwd=cwd)
        ev = subprocess.run([*cmd, "model", "eval", str(out), "--reference", "smollm2-unbinned", "--no-speed",
                             "--json"], capture_output=True, text=True, cwd=cwd, check=True)
        kld = json.loads(ev.stdout).get("measures", {}).get("kld")
        rep = json.loads(r["stdout"])
        rows.append({"name": f"smollm2-unbinned default --bits 4, {label}", "wall_s": r["wall_s"],
                     "peak_rss_mb": r["peak_rss_mb"], "bytes": rep["folder_bytes"], "kld": kld,
                     "predicted_s": rep.get("planned_s"), "predicted_peak_mb": rep.get("planned_peak_mb")})
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shape", default="llama-3.2-1b")
    ap.add_argument("--only", default="resume,llama,dryrun,default,smollm2",
                    help="rows: resume, llama, dryrun, default, q4km (quanta --type Q4_K_M), smollm2, "
                         "blocks (the first four GPTQ blocks)")
    ap.add_argument("--baseline", type=Path, help="a clone of an earlier commit with its own .venv")
    ap.add_argument("--windows", type=int, default=64, help="calibration windows of 256 tokens, both sides")
    args = ap.parse_args()
    only = set(args.only.split(","))
    src = model_folder(args.shape)
    tmp = Path(tempfile.mkdtemp(prefix="model-scale-"))
    rows: list[dict] = []
    try:
        if "resume" in only:
            rows.append(resume_row(tmp))
            print(json.dumps(rows[-1]), flush=True)
        if "blocks" in only:
            rows.append(first_blocks_row(src, tmp))
            print(json.dumps(rows[-1]), flush=True)
        if "llama" in only:
            rows += llama_rows(src, tmp, args.windows)
        rows += quanta_rows(src, tmp, only, args.windows)
        if "smollm2" in only:
            rows += smollm2_rows(tmp, args.baseline)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.shape} (random weights: time and memory only), {machine()}, llama.cpp {VERSION}")
    for r in rows:
        extra = f"  predicted {r['predicted_s']:.0f} s / {r['predicted_peak_mb']:.0f} MB" \
            if r.get("predicted_s") else ""
        extra += f"  KLD {r['kld']:.4f}" if r.get("kld") is not None else ""
        extra += f"  {r['bytes']:,} bytes" if r.get("bytes") else ""
        print(f"{r['name']:<58} {r.get('wall_s', r.get('resumed_s', 0)):8.1f} s  "
              f"{r['peak_rss_mb']:8.0f} MB{extra}")
    write_json("model_scale", {"shape": args.shape, "machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
