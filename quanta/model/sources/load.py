"""One entry point for every model source: GGUF files, quanta folders, Hugging Face folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quanta.errors import InputError
from quanta.model.reports import ModelInfo
from quanta.model.sources.reading import bundled, check_declared_size, read_json, read_tokenizer


@dataclass
class Loaded:
    """A loaded model with its tokenizer, what kind of source it came from, and that source."""

    model: Any
    tokenizer: Any
    kind: str  # "gguf", "quanta", "hf-causal-lm", "hf-encoder"
    source: str
    info: dict = field(default_factory=dict)

    @property
    def source_bytes(self) -> int:
        """Bytes on disk of the source file, or of the files directly in the source folder."""
        p = Path(self.source)
        return p.stat().st_size if p.is_file() else sum(
            f.stat().st_size for f in p.iterdir() if f.is_file())

    @property
    def bos_id(self) -> int:
        """The beginning-of-sequence token id (1 when the model does not say)."""
        bos = getattr(getattr(self.model, "config", None), "bos_token_id", None)
        if isinstance(bos, (list, tuple)):
            bos = bos[0] if bos else None
        return 1 if bos is None else int(bos)


def _quiet_transformers() -> None:
    """No progress bars or deprecation chatter from transformers on quanta's output."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_model(src: str | Path, *, lite: bool = False, verify: bool = True, stream: bool = False,
               native: bool = False) -> Loaded:
    """Load ``src``: a .gguf file, a quanta folder, an HF folder, or a bundled name: "smollm2",
    "minilm", or "smollm2-unbinned" (built into the user's cache on first use).

    lite: a quanta folder of a Llama model loads without transformers, for generation only
    (:mod:`quanta.model.runtime.lite`). verify: check the checksums quanta wrote into its own folders
    and GGUF files (:mod:`quanta.model.formats.integrity`). stream: a Hugging Face folder's weights
    stay in its files until a block asks for them (:mod:`quanta.model.sources.stream`; the
    quantizer's engine does), when its files name every parameter as transformers does.
    native: a GGUF file the compiled kernels run (:mod:`quanta.model.runtime.native`) is only
    mapped, a quanta folder they run is repacked for them
    (:mod:`quanta.model.runtime.native_folder`) — its model a
    :class:`~quanta.model.runtime.native.NativeLM`, no PyTorch — and ``info["native"]`` says why
    not where it is not."""
    if str(src) in ("smollm2", "minilm"):
        src = bundled(str(src))
    elif str(src) == "smollm2-unbinned":
        from quanta.model.sources import unbinned

        src = unbinned.ensure()
    p = Path(src)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise InputError(f"{p}: expected a .gguf file or a model folder")
        return _load_gguf(p, verify, native)
    if (p / "quant_config.json").exists():
        return _load_quanta(p, lite, verify, native)
    import torch

    if (p / "config.json").exists():
        return _load_hf(p, torch, stream)
    raise InputError(f"{p}: neither a .gguf file, a quanta folder nor a Hugging Face folder")


def _load_gguf(p: Path, verify: bool, native: bool) -> Loaded:
    why = "not asked for"
    if native:
        from quanta.model.runtime.native import load_native

        loaded, why = load_native(p, verify=verify)
        if loaded is not None:
            return Loaded(*loaded, "gguf", str(p), {"metadata": loaded[0].metadata, "native": ""})
    from quanta.model.formats.gguf_read import load_gguf

    g = load_gguf(p, verify=verify)
    return Loaded(g.model, g.tokenizer, "gguf", str(p),
                  {"metadata": g.metadata, "tensor_types": g.tensor_types, "native": why})


def _load_quanta(p: Path, lite: bool, verify: bool, native: bool) -> Loaded:
    why = "not asked for"
    if native:
        from quanta.model.runtime.native_folder import load_folder

        loaded, why = load_folder(p, verify=verify)
        if loaded is not None:
            return Loaded(*loaded, "quanta", str(p), {"quant_config": loaded[0].metadata["quant_config"],
                                                      "native": ""})
    from quanta.model.formats.folder import load_quantized

    m, tok, cfg = load_quantized(p, lite=lite, verify=verify)
    return Loaded(m, tok, "quanta", str(p), {"quant_config": cfg, "native": why})


def _refuse_remote_code(p: Path) -> None:
    """A folder whose config asks for its own Python code (``auto_map``) is refused: quanta
    never runs code from a model folder."""
    raw = read_json(p / "config.json")
    if not isinstance(raw, dict):
        raise InputError(f"{p}: config.json is not a JSON object")
    if "auto_map" in raw:
        raise InputError(f"{p}: the model needs its own code (config.json has auto_map); quanta "
                         "never runs code from a model folder")
    check_declared_size(p, raw)


def _check_safetensors(p: Path) -> None:
    """Every weight file's header parses and covers the file (safetensors checks both)."""
    from safetensors import SafetensorError, safe_open

    for f in sorted(p.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as st:
                st.keys()
        except (SafetensorError, OSError, ValueError) as e:
            raise InputError(f"{f}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


def _load_hf(p: Path, torch: Any, stream: bool = False) -> Loaded:
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    _refuse_remote_code(p)
    _check_safetensors(p)
    _quiet_transformers()
    try:
        cfg = AutoConfig.from_pretrained(p, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{p}: cannot read config.json ({str(e).splitlines()[0]})") from None
    causal = any(a.endswith("ForCausalLM") for a in (cfg.architectures or []))
    cls = AutoModelForCausalLM if causal else AutoModel
    from quanta.model.sources.reading import safetensors_entries
    from quanta.model.sources.stream import open_streamed

    try:
        model = open_streamed(p, cls, cfg, safetensors_entries(p)) if stream else None
        if model is None:
            from quanta.model.sources.experts import split_experts

            model = split_experts(cls.from_pretrained(p, local_files_only=True, dtype=torch.float32,
                                                      trust_remote_code=False))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        why = (str(e) or type(e).__name__).splitlines()[0]
        raise InputError(f"{p}: cannot load the model ({why})") from None
    tok_file = p / "tokenizer.json"
    tok = read_tokenizer(tok_file) if tok_file.exists() else None
    return Loaded(model.eval(), tok, "hf-causal-lm" if causal else "hf-encoder", str(p))


#: GGML types that hold plain floats (everything else is a quantized block type)
FLOAT_TYPES = ("F32", "F16", "BF16", "F64")


def stored_weight_stats(loaded: Loaded) -> dict | None:
    """For a GGUF source, the weight figures of the file as stored (its block types' bytes,
    scales included, over the matrices' parameters) — the model in memory is dequantized to
    float32 and would report 32 bits per weight; for a quanta folder the compiled kernels run,
    the figures its writer recorded (its config's ``weight_stats``). None for other sources."""
    if loaded.kind == "quanta" and getattr(loaded.model, "is_causal_lm", False):
        stats = loaded.info["quant_config"].get("weight_stats") or {}
        keys = ("weight_bytes", "params", "bits_per_weight", "quantized_params", "bits_per_quantized_weight")
        return {k: stats.get(k) for k in keys}
    if loaded.kind != "gguf":
        return None
    import math

    from quanta.model.formats.gguf_header import read_header

    mats = [t for t in read_header(loaded.source).tensors if len(t.shape) >= 2]  # (3-D: stacks of experts)
    quant = [t for t in mats if t.ggml_type not in FLOAT_TYPES]
    params = sum(math.prod(t.shape) for t in mats)
    qparams = sum(math.prod(t.shape) for t in quant)
    size = sum(t.n_bytes for t in mats)
    qsize = sum(t.n_bytes for t in quant)
    return {"weight_bytes": size, "params": params, "bits_per_weight": 8.0 * size / max(params, 1),
            "quantized_params": qparams,
            "bits_per_quantized_weight": 8.0 * qsize / qparams if qparams else None}


def describe(loaded: Loaded) -> ModelInfo:
    """A :class:`ModelInfo` for a loaded model, with an honest line on what the file holds."""
    from collections import Counter

    from quanta.model.quantize.apply import count_by_path, weight_stats

    types = gguf_name = None
    desc = ""
    if loaded.kind == "gguf":
        types = dict(Counter(loaded.info["tensor_types"].values()))
        gguf_name = loaded.info["metadata"].get("name")
        bpw = 8.0 * loaded.source_bytes / max(sum(p.numel() for p in loaded.model.parameters()), 1)
        desc = (f"GGUF file with tensor types {types}, {bpw:.2f} bits per weight on disk; "
                "dequantized to float32 in memory")
    return ModelInfo(model=loaded.source, kind=loaded.kind, architecture=type(loaded.model).__name__,
                     file_bytes=loaded.source_bytes,
                     **(stored_weight_stats(loaded) or weight_stats(loaded.model)),
                     quantized_layers=count_by_path(loaded.model), description=desc,
                     gguf_tensor_types=types, gguf_name=gguf_name)
