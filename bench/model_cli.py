"""Whole-process cost of the model commands a user meets first (issue 22's targets), in one run.

    python bench/model_cli.py [--repeat 3] [--source REPO_OR_WORKTREE]

Each row is the wall time of a fresh process (start-up, imports and the work), every run kept:
``quantize smollm2 --dry-run`` (the plan from metadata; target < 2 s); a bad option,
``--target-size 95XB`` on a GGUF output (target < 1 s, exit 2, one line, nothing written); a
Hugging Face folder of an architecture quanta does not write (issue 24's target: one line naming
it and the supported ones, < 1 s, before any weight is read);
loading an RTN 4-bit ``--uniform`` SmolLM2 folder with the lite model; and
``generate … --max-tokens 128 --temperature 0`` from it. ``--source`` runs the same commands
against another checkout of quanta (a ``git worktree`` of an older commit, its compiled kernels
copied in) with this one's virtual environment, interleaved run by run, for before/after figures
on one machine in one run. Writes bench/out/model_cli.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._util import machine, write_json  # noqa: E402
from quanta.render.tables import print_table  # noqa: E402


def _run(src: Path, args: list[str], expect: int = 0) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    # run from outside any checkout: the current folder comes first on sys.path
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                       cwd=tempfile.gettempdir())
    dt = time.perf_counter() - t0
    if r.returncode != expect:
        sys.exit(f"{args}: exit {r.returncode}, expected {expect}\n{r.stderr[-2000:]}")
    return dt


def _loader(src: Path) -> str:
    """The folder loader's module in that checkout (it moved in issue 22)."""
    new = src / "quanta" / "model" / "formats" / "folder.py"
    return "quanta.model.formats.folder" if new.exists() else "quanta.model.files"


def _unknown_family(work: Path) -> Path:
    """A Hugging Face folder whose config names a family quanta does not write (a tiny Llama's
    weights under GPT-NeoX's class name): refused at plan time, before torch or a weight."""
    import json

    folder = work / "gptneox"
    if not folder.exists():
        from quanta.model.sources.tiny import write_hf_folder

        write_hf_folder(folder, seed=1)
        cfg = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(cfg | {"architectures": ["GPTNeoXForCausalLM"]}))
    return folder


def commands(src: Path, work: Path) -> dict[str, tuple[list[str], int]]:
    folder = work / f"fold-{abs(hash(str(src)))}"
    if not folder.exists():
        _run(src, ["-m", "quanta.cli", "model", "quantize", "smollm2", "-o", str(folder), "--method", "rtn",
                   "--uniform", "--json"])
    cli = ["-m", "quanta.cli", "model"]
    bad = ["quantize", "smollm2", "-o", str(work / "x.gguf"), "--format", "gguf", "--target-size", "95XB"]
    other = _unknown_family(work)
    load = f"from {_loader(src)} import load_quantized; load_quantized({str(folder)!r}, lite=True)"
    gen = ["generate", str(folder), "Once upon a time", "--max-tokens", "128", "--temperature", "0", "--json"]
    return {
        "quantize smollm2 --dry-run": ([*cli, "quantize", "smollm2", "-o", str(work / "dry"),
                                        "--dry-run"], 0),
        "bad option (--target-size 95XB)": ([*cli, *bad], 2),
        "unknown architecture (GPTNeoXForCausalLM)": ([*cli, "quantize", str(other), "-o", str(work / "x")],
                                                     2),
        "load the RTN folder (lite)": (["-c", load], 0),
        "generate 128 tokens from it": ([*cli, *gen], 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--source", type=Path, default=None, help="another checkout to compare against")
    args = ap.parse_args()
    sides = {"this": ROOT} | ({"source": args.source.resolve()} if args.source else {})
    times: dict[str, dict[str, list[float]]] = {s: {} for s in sides}
    with tempfile.TemporaryDirectory(prefix="quanta-model-cli-") as tmp:
        cmds = {s: commands(p, Path(tmp)) for s, p in sides.items()}
        for _ in range(args.repeat):
            for side, src in sides.items():
                for name, (cmd, code) in cmds[side].items():
                    times[side].setdefault(name, []).append(_run(src, cmd, code))
        assert not (Path(tmp) / "x.gguf").exists() and not (Path(tmp) / "x").exists(), \
            "a refused command wrote its output"
    names = list(cmds["this"])
    rows = [[n, *(" / ".join(f"{t:.2f}" for t in times[s][n]) for s in sides)] for n in names]
    print_table(f"model commands, whole process, s per run ({machine()})", ["command", *sides], rows,
                left=(0,))
    write_json("model_cli", {"sides": {s: str(p) for s, p in sides.items()}, "seconds": times})


if __name__ == "__main__":
    main()
