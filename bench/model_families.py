"""Every family quanta writes as GGUF, read by llama.cpp — and llama.cpp's own converter on the
same Hugging Face folders as the peer.

    python bench/model_families.py [--families llama,llama3,mistral,qwen2,qwen3,phi3] [--hidden 256]

For each family: a Hugging Face folder of a seeded random model of real grouped-query shapes
(``quanta.model.sources.tiny.tiny_model``: ``--hidden`` wide, 2 layers, 4 heads, 2 KV heads,
the family's own parts) with SmolLM2's byte-level BPE tokenizer (rebuilt from the bundled
GGUF); "llama3" is Llama with Llama 3's rotary scaling (rope theta 500000, factor 8 beyond an
original context of 256 tokens, so that the 512-token windows reach past it), which GGUF keeps
as a ``rope_freqs`` tensor; "llama-spm" is Llama with a SentencePiece-style vocabulary (4,000
pieces with byte fallback, learned from the shipped WikiText-2 validation slice:
``quanta.model.formats.gguf_vocab.train``), which GGUF keeps as scored pieces (llama.cpp's
"llama" tokenizer) — llama.cpp's tokenizer must cut the text as transformers' does, or the
perplexities part; the Gemmas' local layers see 64 tokens back (``sliding_window``), so
that llama.cpp's windowed attention is exercised within the 512-token windows. Then:

1. ``quanta model quantize --format gguf --bits 8 --method rtn`` writes quanta's Q8_0 file;
2. llama.cpp reads it: ``llama-perplexity`` (``-c 512``, ``--chunks``) on WikiText-2 test text
   against ``quanta model eval`` of the same file (quanta-ppl/1 is llama.cpp's protocol; quanta
   dequantizes the file with the ``gguf`` package and runs it in float32). Criterion: the two
   perplexities within 1 % — llama.cpp multiplies Q8_0 weights by activations rounded to 8 bits,
   which moves a model's mean log-probability by well under 0.01 nats; a wrong permutation,
   head size, norm or tokenizer moves it by far more;
3. the peer: ``convert_hf_to_gguf.py --outtype f32`` (llama.cpp's converter, from the same
   llama-cpp-python 0.3.36 source distribution) on the same folder. Where it converts, the two
   token lists must be equal, every tensor of quanta's file (dequantized by ``gguf``) must equal
   the converter's within Q8_0's error (relative RMS error ≤ 1 %; Q8_0 measures about 0.4 %),
   and ``llama-perplexity --kl-divergence`` scores quanta's file against the converter's logits
   (criterion ≤ 1e-3 nats). The converter refuses tokenizers whose pre-tokenizer hash it does
   not know; such families are marked, not hidden. A mixture of experts ("qwen3_moe": 8 experts,
   2 chosen per token) is held to another bound: Q8_0's rounding moves tokens that nearly tie
   in the router to another expert, a discrete change a dense model does not have, so its KLD
   to the float model is several times a dense one's. Its criterion is that llama.cpp's KLD of
   quanta's file against the converter's logits is within 10 % of the KLD ``quanta model eval``
   measures for the same file against the float folder (``quanta KLD vs float``): both then
   see the same file's rounding, and a wrong stack order, router or expert width would add to
   llama.cpp's figure alone.

Random weights measure plumbing, never quality. Writes bench/out/model_families.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench._llama_cpp import VERSION, ensure_built  # noqa: E402
from bench._util import machine, write_json  # noqa: E402
from bench.model_frontier import llama, llama_kld  # noqa: E402
from quanta.model.sources.unbinned import cache_dir  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

FAMILIES = ("llama", "llama3", "llama-spm", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3",
            "qwen3_moe")
#: the "llama-spm" variant's vocabulary size
SPM_VOCAB = 4000
#: the "llama3" variant's rotary scaling (transformers' rope_parameters)
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 256}


def converter() -> tuple[Path, Path]:
    """llama.cpp's convert_hf_to_gguf.py and its gguf-py, from the built source distribution."""
    sdist = next((cache_dir() / "llama.cpp" / VERSION / "src").glob("llama_cpp_python-*"))
    src = sdist / "vendor" / "llama.cpp"
    return src / "convert_hf_to_gguf.py", src / "gguf-py"


def hf_folder(family: str, folder: Path, hidden: int) -> Path:
    """The family's random model with SmolLM2's tokenizer, as a Hugging Face folder."""
    from gguf import GGUFReader
    from safetensors.torch import save_file

    from quanta.model.formats.gguf_read import build_tokenizer
    from quanta.model.sources.reading import bundled
    from quanta.model.sources.tiny import tiny_model

    smol = bundled("smollm2")
    r = GGUFReader(smol)
    tok = build_tokenizer(r, smol)
    vocab = tok.get_vocab_size()
    bos = int(r.fields["tokenizer.ggml.bos_token_id"].contents())
    eos = int(r.fields["tokenizer.ggml.eos_token_id"].contents())
    if family == "llama-spm":  # a SentencePiece-style vocabulary (pieces learned from WikiText valid)
        from quanta.model.formats.gguf_vocab import train
        from quanta.model.quantize.calibrate import default_text

        tok, vocab, bos, eos = train(default_text(), SPM_VOCAB), SPM_VOCAB, 2, 1
    extra = {"pad_token_id": eos} if family == "phi3" else {"rope_parameters": LLAMA3_ROPE} \
        if family == "llama3" else {}
    if family.startswith("gemma"):
        extra = {"pad_token_id": eos, "sliding_window": 64}
    m = tiny_model("llama" if family in ("llama3", "llama-spm") else family, seed=7, vocab=vocab,
                   hidden=hidden, max_position_embeddings=2048, bos_token_id=bos, eos_token_id=eos, **extra)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = m.config.to_dict()
    cfg["architectures"] = [type(m).__name__]
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
    state = {k: v.contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    return folder


def converter_deps() -> None:
    """The converter imports sentencepiece for every Llama-like family (a bench peer's need, not
    quanta's): installed into this environment on first use."""
    import importlib.util

    if importlib.util.find_spec("sentencepiece") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "sentencepiece"], check=True)


def convert(folder: Path, out: Path) -> None:
    converter_deps()
    script, gguf_py = converter()
    r = subprocess.run([sys.executable, str(script), str(folder), "--outtype", "f32", "--outfile", str(out)],
                       capture_output=True, text=True,
                       env={"PYTHONPATH": str(gguf_py), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    if r.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py failed: {r.stderr.strip().splitlines()[-1]}")


def quantize(folder: Path, out: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "quanta.cli", "model", "quantize", str(folder), "-o", str(out),
                        "--format", "gguf", "--bits", "8", "--method", "rtn", "--force", "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"quanta failed: {r.stderr.strip()[-500:]}")


def compare_files(peer: Path, ours: Path) -> dict:
    """Token lists equal; each tensor's relative RMS difference (quanta's Q8_0 against the
    converter's F32), the worst of them; tensors only one file holds."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    a, b = GGUFReader(peer), GGUFReader(ours)
    key = "tokenizer.ggml.tokens"
    tokens_equal = a.fields[key].contents() == b.fields[key].contents()
    theirs = {t.name: t for t in a.tensors}
    worst = 0.0
    for t in b.tensors:
        if t.name in theirs:
            x = np.asarray(dequantize(theirs[t.name].data, theirs[t.name].tensor_type), np.float64).ravel()
            y = np.asarray(dequantize(t.data, t.tensor_type), np.float64).ravel()
            worst = max(worst, float(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30)))
    names = {t.name for t in b.tensors}
    return {"tokens_equal": tokens_equal, "worst_relative_rms": worst,
            "only_in_one": sorted(names ^ set(theirs))}


def llama_ppl(bin_dir: Path, model: Path, text: Path, chunks: int) -> float:
    out = llama(bin_dir, "llama-perplexity", "-m", str(model), "-f", str(text), "-c", "512",
                "--chunks", str(chunks), "-t", "2")
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", out)
    if not m:
        raise RuntimeError(f"no PPL in llama-perplexity's output: {out[-500:]}")
    return float(m.group(1))


def quanta_ppl(model: Path, chunks: int) -> float:
    r = subprocess.run([sys.executable, "-m", "quanta.cli", "model", "eval", str(model), "--chunks",
                        str(chunks), "--ctx", "512", "--no-speed", "--json"], capture_output=True, text=True,
                       cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"quanta eval failed: {r.stderr.strip()[-300:]}")
    return float(json.loads(r.stdout)["measures"]["perplexity"])


def quanta_kld(model: Path, reference: Path, chunks: int) -> float:
    """``quanta model eval``'s KLD of ``model`` against the float ``reference`` folder."""
    r = subprocess.run([sys.executable, "-m", "quanta.cli", "model", "eval", str(model), "--reference",
                        str(reference), "--chunks", str(chunks), "--ctx", "512", "--no-speed", "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"quanta eval failed: {r.stderr.strip()[-300:]}")
    return float(json.loads(r.stdout)["measures"]["kld"])


def one_family(family: str, d: Path, hidden: int, bin_dir: Path, text: Path, chunks: int) -> dict:
    folder = hf_folder(family, d / "hf", hidden)
    row: dict = {"family": family}
    quantize(folder, d / "quanta.gguf")
    row["llama_cpp_ppl"] = llama_ppl(bin_dir, d / "quanta.gguf", text, chunks)
    row["quanta_ppl"] = quanta_ppl(d / "quanta.gguf", chunks)
    row["ppl_ratio"] = row["llama_cpp_ppl"] / row["quanta_ppl"]
    row["quanta_kld_vs_float"] = quanta_kld(d / "quanta.gguf", folder, chunks)
    try:
        convert(folder, d / "peer.gguf")
    except RuntimeError as e:
        row["converter"] = str(e)[-160:]
        return row
    row |= compare_files(d / "peer.gguf", d / "quanta.gguf")
    base = d / "base.kld"
    llama(bin_dir, "llama-perplexity", "-m", str(d / "peer.gguf"), "-f", str(text), "-c", "512",
          "--chunks", str(chunks), "-t", "2", "--kl-divergence-base", str(base))
    row["kld_vs_converter"] = llama_kld(bin_dir, d / "quanta.gguf", base, text, chunks)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=4)
    args = ap.parse_args()
    bin_dir = ensure_built()
    text = ROOT.parent / "shared" / "data" / "wikitext-2" / "test.txt"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            try:
                row = one_family(family, Path(tmp) / family, args.hidden, bin_dir, text, args.chunks)
            except (RuntimeError, SystemExit) as e:
                row = {"family": family, "error": str(e)[-300:]}
            rows.append(row)
            console.print(row)
    print_table(f"quanta's GGUF (Q8_0) in llama.cpp, and against llama.cpp's converter (F32); random "
                f"weights, {args.chunks} × 512 WikiText-2 test tokens ({machine()})",
                ["family", "PPL llama.cpp", "PPL quanta", "ratio", "converter: tokens equal",
                 "worst tensor rel. RMS", "tensors in one file only", "KLD vs converter",
                 "quanta KLD vs float"],
                [[r["family"], *(f"{r[k]:.2f}" if k in r else "–" for k in ("llama_cpp_ppl", "quanta_ppl")),
                  f"{r['ppl_ratio']:.4f}" if "ppl_ratio" in r else r.get("error", "–"),
                  str(r["tokens_equal"]) if "tokens_equal" in r else r.get("converter", "–"),
                  f"{r['worst_relative_rms']:.4f}" if "worst_relative_rms" in r else "–",
                  ", ".join(r.get("only_in_one", [])) or "–",
                  f"{r['kld_vs_converter']:.2e}" if "kld_vs_converter" in r else "–",
                  f"{r['quanta_kld_vs_float']:.2e}" if "quanta_kld_vs_float" in r else "–"]
                 for r in rows])
    print(f"wrote {write_json('model_families', {'rows': rows, 'hidden': args.hidden})}")


if __name__ == "__main__":
    main()
