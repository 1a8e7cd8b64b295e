"""quanta's GPTQ against llm-compressor's, into the same compressed-tensors format, in one run.

    python bench/model_llmcompressor.py [--group-size 64] [--chunks 40]

The model: ``smollm2-unbinned`` written as a Hugging Face folder (float32 safetensors,
``tokenizer.json``). The calibration: quanta's default windows (64 × 256 tokens of the shipped
WikiText-2 *valid* slice, seed 0), handed to llm-compressor as the same token ids. The grid:
4-bit symmetric integers in groups of ``--group-size`` (64: SmolLM2's 576-wide rows hold no
whole group of 128, W4A16's preset), every Linear but the head (tied to the embedding, which
both keep float). Each side runs as one process as a user runs it, timed whole:

* quanta: ``quanta model quantize HF -o OUT --format compressed-tensors --bits 4 --group-size G
  --sym --method gptq``;
* llm-compressor 0.14.0.1 (PyPI ``llmcompressor``, CPU), its ``GPTQModifier`` with its defaults
  on the same scheme, ``oneshot`` over the same windows, ``save_pretrained(save_compressed=True)``
  — installed by this script into its own virtual environment under ``~/.cache/quanta/peers``
  (it pins transformers ≤ 5.17 and compressed-tensors 0.19; torch is the machine's 2.13.0).

Both folders are loaded the same way — transformers with the ``compressed-tensors`` package —
and scored by quanta's evaluator (quanta-ppl/1: KL divergence to ``smollm2-unbinned`` over
``--chunks`` × 512 WikiText-2 *test* tokens). Writes bench/out/model_llmcompressor.json.
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

from bench._util import machine, write_json  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

PEER = "llmcompressor==0.14.0.1"

PEER_SCRIPT = r"""
import sys, time
import numpy as np, torch
torch.set_num_threads(2)
from datasets import Dataset
from transformers import AutoModelForCausalLM
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import GPTQModifier

src, ids_path, out, group = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ids = np.load(ids_path)
ds = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": np.ones_like(ids).tolist()})
model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
scheme = {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "symmetric": True,
                                              "strategy": "group", "group_size": group}}
recipe = GPTQModifier(config_groups={"group_0": scheme}, ignore=["lm_head"])
oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=ids.shape[1],
        num_calibration_samples=len(ids))
model.save_pretrained(out, save_compressed=True)
"""


def peer_python() -> Path:
    """The peer's virtual environment (made once): llm-compressor with the machine's torch."""
    from quanta.model.sources.unbinned import cache_dir

    venv = cache_dir() / "peers" / "llmcompressor"
    py = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0", "transformers==5.17.0", PEER],
                       check=True)
        (venv / ".installed").write_text(PEER)
    return py


def hf_folder(folder: Path) -> tuple[Path, object]:
    """``smollm2-unbinned`` as a Hugging Face folder; returns it and the loaded model."""
    from quanta.model.sources.load import load_model

    m = load_model("smollm2-unbinned")
    m.model.save_pretrained(folder)
    m.tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    return folder, m


def timed(cmd: list[str], **kw: object) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {r.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    import numpy as np
    import torch

    from quanta.model.eval.evaluate import wikitext2_test_text, windows
    from quanta.model.eval.harness import Reference
    from quanta.model.options import DEFAULT_LENGTH, DEFAULT_SAMPLES
    from quanta.model.quantize.calibrate import calibration_windows

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--chunks", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(2)
    py = peer_python()
    tmp = Path(tempfile.mkdtemp(prefix="llmc-"))
    src, ref = hf_folder(tmp / "hf")
    calib = calibration_windows(ref.tokenizer, None, samples=DEFAULT_SAMPLES, length=DEFAULT_LENGTH,
                                bos_id=ref.bos_id, seed=0)
    np.save(tmp / "ids.npy", np.asarray(calib, np.int64))
    ours, theirs = tmp / "quanta", tmp / "llmcompressor"
    t_quanta = timed([sys.executable, "-m", "quanta.cli", "model", "quantize", str(src), "-o", str(ours),
                      "--format", "compressed-tensors", "--bits", "4", "--group-size", str(args.group_size),
                      "--sym", "--method", "gptq", "--json"], cwd=ROOT)
    console.print(f"quanta: {t_quanta:.0f} s")
    script = tmp / "peer.py"
    script.write_text(PEER_SCRIPT)
    t_peer = timed([str(py), str(script), str(src), str(tmp / "ids.npy"), str(theirs), str(args.group_size)])
    console.print(f"llm-compressor: {t_peer:.0f} s")
    from transformers import AutoModelForCausalLM

    wins = windows(ref.tokenizer, wikitext2_test_text(), bos_id=ref.bos_id, n_chunks=args.chunks)
    reference = Reference(ref.model, wins)
    rows = []
    sides = (("quanta gptq", ours, t_quanta), ("llm-compressor GPTQModifier", theirs, t_peer))
    for name, folder, secs in sides:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        s = reference.score(model)
        size = sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".safetensors")
        rows.append({"name": name, "seconds": secs, "kld": s.kld, "top1": s.top1, "perplexity": s.perplexity,
                     "safetensors_bytes": size})
        del model
    print_table(f"GPTQ into compressed-tensors, int4 symmetric g{args.group_size}, SmolLM2-135M-unbinned "
                f"({machine()}, {args.chunks}×512 test tokens; reference PPL {reference.perplexity:.2f})",
                ["quantizer", "whole process (s)", "KLD", "top-1", "PPL", "safetensors bytes"],
                [[r["name"], f"{r['seconds']:.0f}", f"{r['kld']:.4f}", f"{100 * r['top1']:.1f}%",
                  f"{r['perplexity']:.2f}", f"{r['safetensors_bytes']:,}"] for r in rows], left=(0,))
    q, p = rows
    console.print(f"KLD ratio quanta / llm-compressor {q['kld'] / p['kld']:.2f}× (target ≤ 1); time ratio "
                  f"{q['seconds'] / p['seconds']:.2f}× (target ≤ 1)")
    write_json("model_llmcompressor", {"rows": rows, "group_size": args.group_size, "peer": PEER})


if __name__ == "__main__":
    main()
