"""Seeded random-weight models of published shapes, as Hugging Face folders, made here.

    python bench/make_model.py SHAPE OUT [--seed 0] [--shard-gb 2]
    SHAPE: llama-3.2-1b (1.24 B parameters), llama-3.1-8b (8.03 B), smollm2-135m (0.13 B)

Writes ``OUT/config.json`` (the published config: sizes, heads, Llama 3's rotary scaling, tied or
untied head), ``OUT/model-0000N-of-0000M.safetensors`` shards in bfloat16 with
``model.safetensors.index.json``, and ``tokenizer.json`` (SmolLM2's byte-level BPE, rebuilt from
the bundled GGUF: 49,152 tokens, so ids stay below every shape's vocabulary). Each tensor is drawn
from its own generator (``seed`` and the tensor's name), N(0, 0.02) for matrices and ones for
norms, and written shard by shard: memory holds one shard (``--shard-gb``), never the model. The
same seed gives the same bytes. The files go to ``OUT.partial`` and the folder is renamed when
they are all written; ``OUT`` must not exist.

Random weights measure time and memory (bench/model_scale.py, issue 25), never quality.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def _llama3(factor: float) -> dict:
    """Llama 3's rotary scaling (rope_parameters) with ``factor``."""
    return {"rope_type": "llama3", "rope_theta": 500000.0, "factor": factor, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


#: published shapes (Hugging Face config.json values)
SHAPES = {
    "llama-3.2-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                     "vocab_size": 128256, "tie_word_embeddings": True, "max_position_embeddings": 131072,
                     "rope_parameters": _llama3(32.0)},
    "llama-3.1-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                     "vocab_size": 128256, "tie_word_embeddings": False, "max_position_embeddings": 131072,
                     "rope_parameters": _llama3(8.0)},
    "smollm2-135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
                     "tie_word_embeddings": True, "max_position_embeddings": 8192,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}},
}


def tensor_shapes(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    """Every weight of a Llama of config ``cfg``, in the order transformers names them."""
    from quanta.model.arch import LLAMA

    blocks = LLAMA.block_shapes(cfg)
    out = [("model.embed_tokens.weight", (cfg["vocab_size"], cfg["hidden_size"]))]
    for i in range(cfg["num_hidden_layers"]):
        out += [(f"model.layers.{i}.{m}.weight", s) for m, s in blocks.items()]
    out.append(("model.norm.weight", (cfg["hidden_size"],)))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", (cfg["vocab_size"], cfg["hidden_size"])))
    return out


def draw(name: str, shape: tuple[int, ...], seed: int):
    """One tensor, bfloat16: ones for a norm, else N(0, 0.02) from its own generator."""
    import torch

    if len(shape) == 1:
        return torch.ones(shape, dtype=torch.bfloat16)
    key = int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)
    g = torch.Generator().manual_seed(seed * 1_000_003 + key)
    out = torch.empty(shape, dtype=torch.bfloat16)
    rows = max(1, (1 << 24) // shape[1])  # 16 M values a slice: a float32 slice is 64 MB
    for a in range(0, shape[0], rows):
        x = torch.randn((min(rows, shape[0] - a), shape[1]), generator=g) * 0.02
        out[a:a + rows] = x.to(torch.bfloat16)
    return out


def make(shape: str, out: Path, seed: int = 0, shard_bytes: int = 2 << 30) -> dict:
    """Write the folder (see the module's docstring) — into ``OUT.partial``, renamed to ``out``
    when every file is written, so an interrupted run leaves no folder that looks whole; returns
    its summary."""
    import shutil

    if out.exists():
        raise SystemExit(f"{out} exists: give a new folder")
    part = out.with_name(out.name + ".partial")
    shutil.rmtree(part, ignore_errors=True)
    info = _write(shape, part, seed, shard_bytes)
    part.rename(out)
    return info


def _write(shape: str, out: Path, seed: int, shard_bytes: int) -> dict:
    from safetensors.torch import save_file

    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
           **SHAPES[shape]}
    out.mkdir(parents=True, exist_ok=True)
    specs = tensor_shapes(cfg)
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, s in specs:
        n = 2 * (s[0] * s[1] if len(s) == 2 else s[0])
        if groups[-1] and size + n > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append((name, s))
        size += n
    weight_map = {}
    for k, group in enumerate(groups, 1):
        fname = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        save_file({name: draw(name, s, seed) for name, s in group}, str(out / fname),
                  metadata={"format": "pt"})
        weight_map |= {name: fname for name, _ in group}
    total = sum(2 * (s[0] * s[1] if len(s) == 2 else s[0]) for _, s in specs)
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    _tokenizer(out)
    params = sum(s[0] * s[1] if len(s) == 2 else s[0] for _, s in specs)
    return {"shape": shape, "parameters": params, "shards": len(groups), "bytes": total}


def _tokenizer(out: Path) -> None:
    from gguf import GGUFReader

    from quanta.model.formats.gguf_read import build_tokenizer
    from quanta.model.sources.reading import bundled

    smol = bundled("smollm2")
    build_tokenizer(GGUFReader(smol), smol).save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-gb", type=float, default=2.0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    info = make(args.shape, args.out, args.seed, int(args.shard_gb * 2**30))
    print(json.dumps(info | {"seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
