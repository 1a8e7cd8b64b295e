"""The plan of ``quanta model quantize``, made before one weight is read.

As llama.cpp's quantizer does in its preliminary pass, :func:`read_layout` reads only the
source's metadata — a GGUF header (:mod:`quanta.model.formats.gguf_header`), or a Hugging Face folder's
``config.json`` and safetensors headers — and :func:`plan_for` decides, tensor by tensor and in
one order of precedence, what each becomes and why:

1. norms stay float (a GGUF keeps them F32);
2. a tied output head is the token embedding (no tensor of its own);
3. the token embedding: ``--embedding-bits``, else (GGUF) Q8_0 when tied to the head or the
   layers' type, else (quanta folder) 8 bits per row; with a target or the default's sharing it
   is one of the units whose format the measured sensitivity chooses;
4. a Linear layer outside ``--include``/inside ``--exclude`` (the head unless ``--head``) stays
   float;
5. every other Linear layer: ``--bits`` on the format's grid — GGML blocks of 32 in a GGUF,
   else ``--group-size`` or the largest of 128/64/32 dividing its inputs; with ``--target-size``
   / ``--target-bpw``, or the plain calibrated default (the uniform file's bytes shared out),
   that is the starting point the sensitivity pass refines.

The plan carries the predicted output size (exact for uniform formats but for the lengths of
metadata text; the budget when the sensitivity pass chooses, which spends about all of it) and
is what ``--dry-run`` prints. Everything here runs
without torch, so a plan of SmolLM2 takes a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from quanta.errors import ConfigError, InputError
from quanta.model.arch import Architecture, for_gguf, for_hf
from quanta.model.formats.weight import (
    BLOCK,
    EMBEDDING_ROWS,
    WeightFormat,
    auto_group,
    ggml_format,
    gguf_type,
)
from quanta.model.options import Options
from quanta.model.quantize.cost import SLICE_BYTES, Cost, for_plan, machine_speed, shapes_of
from quanta.model.quantize.presets import PRESETS

#: bytes of a float dtype
_FLOAT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class TensorSpec:
    """A weight of the source: its module name (Hugging Face's), shape and role (attention,
    mlp, embedding, head, norm)."""

    name: str
    shape: tuple[int, ...]
    role: str
    source_bytes: int = 0


@dataclass(frozen=True)
class Layout:
    """What the source's metadata says: its kind (gguf, hf-causal-lm), architecture, tensors,
    whether the head is tied, the context, and the bytes a quanta folder's tokenizer takes."""

    source: str
    kind: str
    architecture: str
    tensors: tuple[TensorSpec, ...]
    tied: bool
    context: int
    source_bytes: int
    tokenizer_bytes: int
    bias_bytes: int = 0  # float32 bytes of the biases (a Hugging Face folder's; written as they are)
    gqa: int = 1  # query heads per key/value head
    experts: int = 0  # a mixture's experts per block (0: a dense model)
    experts_used: int = 0  # of which the router picks per token
    sliding_window: int = 0  # a Hugging Face config's attention window (0: none)

    @property
    def family(self) -> Architecture:
        return for_hf(self.architecture)


def _gguf_layout(p: Path) -> Layout:
    from quanta.model.formats.gguf_header import read_header
    from quanta.model.formats.gguf_read import build_tokenizer

    h = read_header(p)
    arch = h.fields.get("general.architecture")
    arch = arch.contents() if arch else None
    a = _family(lambda: for_gguf(arch, str(p)))
    specs = []
    for t in h.tensors:
        param, _ = a.hf_name(t.name)
        if param is None:
            continue
        module = param.removesuffix(".weight")
        role = a.role(module)
        if "*" in module:  # a stack of experts: one matrix each, as the model holds them
            n, shape = t.shape[0], tuple(t.shape[1:])
            specs += [TensorSpec(module.replace("*", str(e)), shape, role, t.n_bytes // n) for e in range(n)]
            continue
        specs.append(TensorSpec(module if role != "norm" else param, t.shape, role, t.n_bytes))
    ctx = h.fields.get(f"{arch}.context_length")
    tied = not any(s.role == "head" for s in specs)
    heads, kv = (h.fields.get(f"{arch}.attention.{k}") for k in ("head_count", "head_count_kv"))
    gqa = int(heads.contents()) // int(kv.contents()) if heads and kv and int(kv.contents()) else 1
    experts, used = (h.fields.get(f"{arch}.{k}") for k in ("expert_count", "expert_used_count"))
    return Layout(str(p), "gguf", a.hf_class, tuple(specs), tied=tied,
                  context=int(ctx.contents()) if ctx else 0, source_bytes=p.stat().st_size,
                  tokenizer_bytes=_tokenizer_bytes(build_tokenizer(h, p)), gqa=gqa,
                  experts=int(experts.contents()) if experts else 0,
                  experts_used=int(used.contents()) if used else 0)


def _tokenizer_bytes(tok: Any) -> int:
    """Bytes of ``tokenizer.json`` as a quanta folder writes it (``Tokenizer.save``: pretty)."""
    return len(tok.to_str(pretty=True).encode())


def _family(find: Any) -> Architecture:
    """The family ``find()`` names, if quanta writes it (a causal LM whose output it reads back)."""
    try:
        a = find()
    except ConfigError as e:
        raise InputError(f"{e}; quanta writes only what it reads back") from None
    if not a.causal:
        raise InputError(f"architecture {a.hf_class!r} is not supported for quantizing (an encoder: "
                         "`quanta model eval` measures it); quanta writes only what it reads back")
    return a


def _hf_layout(p: Path) -> Layout:
    from quanta.model.sources.reading import read_json, read_tokenizer, safetensors_entries

    cfg = read_json(p / "config.json")
    arch = (cfg.get("architectures") or [None])[0] if isinstance(cfg, dict) else None
    a = _family(lambda: for_hf(arch, str(p), causal=True))
    a.check_config(cfg, str(p))
    shapes = {k: e["shape"] for k, e in safetensors_entries(p).items()}
    specs = tuple(TensorSpec(k.removesuffix(".weight") if len(s) == 2 else k, s,
                             a.role(k.removesuffix(".weight")))
                  for k, s in shapes.items() if k.endswith(".weight"))
    tok = p / "tokenizer.json"
    tied = bool(cfg.get("tie_word_embeddings", False)) or not any(s.role == "head" for s in specs)
    biases = sum(4 * math.prod(s) for k, s in shapes.items() if k.endswith(".bias"))
    return Layout(str(p), "hf-causal-lm", arch, specs, tied=tied,
                  context=int(cfg.get("max_position_embeddings") or 0),
                  source_bytes=sum(f.stat().st_size for f in p.iterdir() if f.is_file()),
                  tokenizer_bytes=_tokenizer_bytes(read_tokenizer(tok)) if tok.exists() else 0,
                  bias_bytes=biases, gqa=_gqa(cfg), experts=a.sizes(cfg)["experts"],
                  experts_used=int(cfg.get("num_experts_per_tok") or 0) if a.experts else 0,
                  sliding_window=int(cfg.get("sliding_window") or 0))


def _gqa(cfg: dict) -> int:
    heads = int(cfg.get("num_attention_heads") or 1)
    return max(1, heads // int(cfg.get("num_key_value_heads") or heads))


def _gguf_fields(layout: Layout) -> list[tuple]:
    """The GGUF metadata a Hugging Face folder's file will carry (refused in one line where
    quanta cannot write it: :func:`quanta.model.formats.gguf_hf.check`)."""
    from quanta.model.formats import gguf_hf
    from quanta.model.sources.reading import folder_chat_template, read_json

    p = Path(layout.source)
    cfg = read_json(p / "config.json")
    return gguf_hf.metadata(p, cfg, for_hf(layout.architecture), folder_chat_template(p))


def read_layout(src: str | Path) -> Layout:
    """The :class:`Layout` of a model source (a GGUF file, a Hugging Face folder, or a bundled
    name), from its metadata alone."""
    from quanta.model.sources.reading import NAMES, bundled, check_source

    check_source(src)
    if str(src) in NAMES:
        if str(src) == "minilm":
            raise ConfigError("minilm: saving quantized encoders is not supported (use `quanta model eval "
                              "minilm --bits 4` to measure them)")
        if str(src) == "smollm2-unbinned":
            from quanta.model.sources import unbinned

            src = unbinned.ensure()
        else:
            src = bundled(str(src))
    p = Path(src)
    if p.is_file():
        return _gguf_layout(p)
    if (p / "quant_config.json").exists():
        raise ConfigError(f"{p}: a quanta folder is quantized already (quantize its source instead)")
    if (p / "config.json").exists():
        return _hf_layout(p)
    raise InputError(f"{p}: neither a .gguf file nor a Hugging Face folder")


@dataclass(frozen=True)
class PlanEntry:
    """One tensor's fate: its format (a :class:`WeightFormat` label, or a float dtype), the
    rounding method, the bytes it will take and why."""

    name: str
    shape: tuple[int, ...]
    role: str
    format: str
    method: str | None
    nbytes: int
    reason: str


@dataclass(frozen=True)
class QuantPlan:
    """What ``quanta model quantize`` will do (see the module's docstring). ``kind``: the layers'
    GGML type (GGUF output); ``sym``/``group_size``: the layers' grid; ``refine``: "target" or
    "default sharing" when the measured sensitivity chooses the formats within ``budget_bytes``."""

    source: str
    architecture: str
    format: str
    method: str
    needs_calibration: bool
    kind: str | None
    sym: bool
    group_size: int | None
    refine: str | None
    budget_bytes: int | None
    predicted_bytes: int
    entries: tuple[PlanEntry, ...] = field(default_factory=tuple)
    cost: Cost | None = None
    #: the bytes the sensitivity pass may give its units (the layers it chooses for and the
    #: embedding): the uniform file's units (the default's sharing), bits per weight × units, or
    #: the target less an upper bound of everything else the output holds
    unit_budget: int | None = None
    #: float32 bytes of the embedding's and head's row slices (smaller under ``--max-memory``)
    slice_bytes: int = SLICE_BYTES
    #: what the user should know before running it (the output cannot carry something)
    notes: tuple[str, ...] = ()
    #: whether the sensitivity pass offers (and prices) the lattice types (:func:`lattice_offered`)
    lattice: bool = False

    def record(self, chosen: dict[str, str] | None = None) -> dict:
        """The plan as the output keeps it (a folder's config, a GGUF's ``quanta.plan``): the
        decisions, the predicted size, and per tensor [format, method, reason] — with ``chosen``
        (unit name → format label, the sensitivity pass's map) for the formats it chose. The
        time and memory estimates stay out: a refitted cost model must not change output bytes."""
        chosen = chosen or {}
        reasons: list[str] = []
        tensors = {}
        for e in self.entries:
            fmt, why = e.format, e.reason
            unit = "token_embd" if e.role == "embedding" else e.name
            if unit in chosen:
                fmt, why = chosen[unit], f"chosen by measured sensitivity ({self.refine})"
            if why not in reasons:
                reasons.append(why)
            tensors[e.name] = [fmt, e.method, reasons.index(why)]
        return {"format": self.format, "method": self.method, "refine": self.refine,
                "budget_bytes": self.budget_bytes, "predicted_bytes": self.predicted_bytes,
                "reasons": reasons, "tensors": tensors}

    def layer_formats(self) -> dict[str, str]:
        """The format label of every quantized Linear layer (not the embedding), by name."""
        return {e.name: e.format for e in self.entries if e.method and e.role != "embedding"}

    def embedding_format(self) -> str | None:
        """The token embedding's format label (None when it stays float)."""
        return next((e.format for e in self.entries if e.role == "embedding" and e.method), None)

    @property
    def mixed(self) -> bool:
        return self.refine == "target"

    @property
    def shared(self) -> bool:
        return self.refine == "default sharing"

    def to_json(self) -> dict:
        import dataclasses

        from quanta.reports import jsonable

        return {**jsonable(dataclasses.asdict(self)), "mixed": self.mixed, "shared": self.shared}


#: the row slices ``--max-memory`` may shrink the embedding's and head's to (float32 bytes)
SMALLER_SLICES = (64 * 2**20, 32 * 2**20, 16 * 2**20, 8 * 2**20)


def _fit_memory(opts: Options, cost_of: Any) -> tuple[Cost, int]:
    """The predicted cost and the row slices the run reads the embedding and head in: the
    default, or (``--max-memory``) the largest smaller slices whose predicted peak fits; a
    one-line refusal when none does."""
    cost = cost_of(SLICE_BYTES)
    limit = opts.max_memory
    if limit is None or cost.peak_bytes <= limit:
        return cost, SLICE_BYTES
    for sb in SMALLER_SLICES:
        smaller = cost_of(sb)
        if smaller.peak_bytes <= limit:
            return smaller, sb
    raise ConfigError(f"--max-memory {limit / 1e9:.2f} GB: this run needs about "
                      f"{smaller.peak_bytes / 1e9:.2f} GB even with the embedding and head read in "
                      f"{SMALLER_SLICES[-1] >> 20} MB slices (fewer --calib-samples hold fewer activations)")


def _layer_format(opts: Options, kind: str | None, cols: int) -> tuple[WeightFormat, str]:
    if kind and opts.type:
        return ggml_format(kind), f"llama.cpp's {opts.type} rules (quanta.model.quantize.presets)"
    if kind:
        return ggml_format(kind), f"--bits {opts.bits}: {kind}, blocks of {BLOCK}"
    if opts.group_size is not None:
        g = opts.group_size or cols
        return WeightFormat(f"{opts.bits}-bit g{g}", opts.bits, opts.group_size, opts.sym), \
            f"--bits {opts.bits} --group-size {opts.group_size}"
    g = auto_group(cols)
    return WeightFormat(f"{opts.bits}-bit g{g}", opts.bits, g, opts.sym), \
        f"--bits {opts.bits}, groups of {g} (the largest of 128/64/32 dividing {cols} inputs)"


def _embedding_format(opts: Options, kind: str | None, tied: bool) -> tuple[WeightFormat | None, str]:
    eb = opts.embedding_bits
    if opts.format == "compressed-tensors":
        return None, "compressed-tensors quantizes Linear layers: the embedding stays float"
    if kind and opts.type:
        return _layer_format(opts, kind, 0)
    if kind:
        return (ggml_format("Q8_0"), "tied to the output head, the most sensitive matrix: Q8_0") if tied \
            else (ggml_format(kind), "the layers' type")
    if eb == 0:
        return None, "--embedding-bits 0"
    if eb is not None:
        g = 0 if eb == 8 else 32
        label = f"{eb}-bit {'row' if g == 0 else 'g32'}"
        return WeightFormat(label, eb, g, eb == 8), f"--embedding-bits {eb}"
    return EMBEDDING_ROWS, "8 bits per row: a tied head runs PyTorch's int8 kernel" if tied else \
        "8 bits per row (the default embedding; --embedding-bits sets another)"


def _decide(spec: TensorSpec, opts: Options, layout: Layout, kind: str | None) -> PlanEntry | None:
    """One tensor's entry, by the module docstring's order of precedence (None: no tensor);
    ``kind``: the layers' GGML type, or with ``--type`` this tensor's type in llama.cpp's preset."""
    rows, cols = (*spec.shape, 1)[:2]
    floats = "float32" if kind else opts.float_dtype
    as_float = math.prod(spec.shape) * _FLOAT_BYTES[floats]
    if spec.role == "norm":
        return PlanEntry(spec.name, spec.shape, spec.role, floats, None, as_float, "norms stay float")
    if spec.role == "router":
        return PlanEntry(spec.name, spec.shape, spec.role, floats, None, as_float,
                         "a mixture's router stays float (as llama.cpp keeps it)")
    if spec.role == "head" and layout.tied:
        return None
    if spec.role == "embedding":
        fmt, why = _embedding_format(opts, kind, layout.tied)
        if fmt is None:
            return PlanEntry(spec.name, spec.shape, spec.role, floats, None, as_float, why)
        return PlanEntry(spec.name, spec.shape, spec.role, fmt.label, opts.method,
                         fmt.nbytes(rows, cols, embedding=not kind), why)
    excluded = not any(fnmatch(spec.name, p) for p in opts.include) or \
        any(fnmatch(spec.name, p) for p in opts.excluded) or (spec.role == "head" and not opts.head)
    if excluded:
        kept = spec.source_bytes if kind and layout.kind == "gguf" else as_float
        why = "left out by --include/--exclude" + ("" if opts.head else " (the head needs --head)")
        kept_as = "source" if kind and layout.kind == "gguf" else floats
        return PlanEntry(spec.name, spec.shape, spec.role, kept_as, None, kept, why)
    fmt, why = _layer_format(opts, kind, cols)
    if not fmt.fits(cols):
        raise ConfigError(f"layer {spec.name}: {fmt.label} needs rows of a multiple of its block, "
                          f"not {cols}")
    size = fmt.nbytes(rows, cols)
    if opts.format == "compressed-tensors":
        from quanta.model.formats.compressed import nbytes

        size = nbytes(rows, cols, fmt.bits, fmt.group_size or cols, fmt.sym, _FLOAT_BYTES[opts.float_dtype])
    return PlanEntry(spec.name, spec.shape, spec.role, fmt.label, opts.method, size, why)


def _refine(opts: Options, needs_calibration: bool) -> str | None:
    """Whether the sensitivity pass chooses the formats: under a target (a llama.cpp preset's
    size too), or for the plain calibrated default in a quanta folder (the uniform file's bytes
    shared out)."""
    if opts.mixed:
        return "target"
    plain = opts.plain and opts.format == "quanta" and opts.bits < 8
    return "default sharing" if plain and needs_calibration else None


def _format_checks(layout: Layout, opts: Options) -> list[tuple] | None:
    """Refuse what the output format cannot hold for this source; returns the GGUF metadata a
    Hugging Face folder's file will carry (None for other outputs)."""
    from quanta.model.quantize.methods import METHODS

    if opts.format == "compressed-tensors" and METHODS[opts.method].scales_activations:
        _check_folds(for_hf(layout.architecture), opts.method)
    return _gguf_fields(layout) if opts.format == "gguf" and layout.kind != "gguf" else None


def _check_folds(family: Architecture, method: str) -> None:
    """compressed-tensors has no place for an input scale: AWQ must fold every layer's scales
    into the layer or norm before it, which the family's table says it can or cannot."""
    folded = {c for _, consumers in family.folds for c in consumers}
    loose = [m for m in family.linears if m not in folded]
    if loose:
        raise ConfigError(f"--method {method} on {family.hf_class} leaves explicit input scales on "
                          f"{', '.join(loose)}, which compressed-tensors cannot store (use gptq or imatrix)")


def _notes(layout: Layout, kind: str | None) -> tuple[str, ...]:
    """What the output will not carry: a sliding attention window in a GGUF "llama" file (Mistral's;
    llama.cpp's converter drops it too — llama.cpp then attends over the whole context)."""
    window, family = layout.sliding_window, layout.family
    if kind and layout.kind != "gguf" and family.gguf_arch == "llama" and 0 < window < layout.context:
        return (f"GGUF's llama architecture has no sliding window: llama.cpp will attend over the whole "
                f"context where this model attends {window} tokens back (beyond {window} tokens the two "
                "differ, as with llama.cpp's own converter)",)
    return ()


def _check_stacks(family: Architecture, entries: tuple[PlanEntry, ...]) -> None:
    """GGUF holds a block's experts of one kind as one tensor of one type: ``--include`` /
    ``--exclude`` must take all of a stack's experts or none."""
    fates: dict[str, set] = {}
    for e in entries:
        if family.expert_index(e.name) is not None:
            fates.setdefault(family.stack(e.name), set()).add((e.format, e.method))
    mixed = next((s for s, f in fates.items() if len(f) > 1), None)
    if mixed:
        raise ConfigError(f"--format gguf stores {mixed} as one tensor of one type: --include/--exclude "
                          "must take all of its experts or none")


def options_for(layout: Layout, opts: Options) -> Options:
    """The options as the source's family needs them: an embedding that scales its own output
    (Gemma's, by √hidden) stays float in a quanta folder (a quantized embedding does not carry
    the scale; llama.cpp scales a GGUF's in its graph, so there it is quantized); the plain
    calibrated GGUF default is a llama.cpp preset (:func:`default_type`); a llama.cpp preset
    quantizes an untied output head, as llama.cpp does. The command and its ``--dry-run`` both
    plan with these."""
    scaled = for_hf(layout.architecture).scaled_embedding
    if opts.embedding_bits is None and scaled and opts.format == "quanta":
        opts = dataclasses.replace(opts, embedding_bits=0)
    if (kind := default_type(opts)) is not None:
        opts = dataclasses.replace(opts, type=kind)
    if opts.type and not layout.tied and not opts.head:
        opts = dataclasses.replace(opts, head=True)
    return opts


def lattice_offered(opts: Options, unit_budget: int | None = None, units: int = 0) -> bool:
    """Whether a GGUF command's sensitivity pass prices the lattice types: a lattice preset, or a
    budget for the units (``unit_budget`` bytes for ``units`` weights: a target's, a preset's, the
    default's) under :data:`~quanta.model.quantize.recipe.LATTICE_BPW` bits per weight — the
    rule :func:`plan_for` decides by and the command follows (:attr:`QuantPlan.lattice`)."""
    from quanta.model.quantize.presets import lattice_preset
    from quanta.model.quantize.recipe import LATTICE_BPW

    if opts.format != "gguf":
        return False
    return bool(lattice_preset(opts.type)) or (
        unit_budget is not None and 8 * unit_budget < LATTICE_BPW * max(units, 1))


def default_type(opts: Options) -> str | None:
    """The llama.cpp preset a plain ``--format gguf --bits 4`` (or 5) with a calibrated method
    stands for — no ``--uniform``, ``--type``, target, ``--group-size`` or ``--sym``: ``Q4_0``
    (``Q5_0``), a file no larger than llama.cpp's of that type with every tensor's type chosen by
    its measured sensitivity, as the plain default shares a quanta folder's bytes out; None
    for every other command (``--uniform`` gives the uniform Q4_1/Q5_1 file)."""
    from quanta.model.quantize.methods import METHODS

    calibrated = METHODS[opts.method].needs_calibration
    if opts.format == "gguf" and opts.plain and opts.bits in (4, 5) and calibrated:
        return f"Q{opts.bits}_0"
    return None


def _preset_types(layout: Layout, opts: Options) -> dict[str, str]:
    """Each weight's type in llama.cpp's preset ``opts.type`` (by Hugging Face module name)."""
    from quanta.model.quantize.presets import tensor_type

    if not opts.type:
        return {}
    fam = layout.family
    where: dict[str, tuple[str, int]] = {}
    for s in layout.tensors:
        if s.role == "embedding":
            where[s.name] = ("output" if layout.tied else "token_embd", 0)
        elif s.role == "head":
            where[s.name] = ("output", 0)
        elif s.role not in ("norm", "router") and len(s.shape) == 2:
            _, layer, gguf_kind, _ = fam.gguf_name(s.name + ".weight").split(".")
            where[s.name] = (gguf_kind, int(layer))
    n_layers = 1 + max((layer for _, layer in where.values()), default=0)
    out = {}
    for s in layout.tensors:
        if s.name in where:
            out[s.name] = tensor_type(opts.type, *where[s.name], n_layers, s.shape[1], gqa=layout.gqa,
                                      experts=layout.experts)
            if out[s.name] == "F16":
                raise ConfigError(f"--type {opts.type}: {s.name} has rows of {s.shape[1]}, which no GGML "
                                  "block type divides")
    return out


def _fixed_bytes(layout: Layout, opts: Options, entries: tuple[PlanEntry, ...], kind: str | None,
                 gguf_fields: list[tuple] | None, refine: str | None) -> int:
    """The output's bytes besides its tensors (but for the plan's own record): metadata,
    tokenizer, headers, alignment."""
    if kind and gguf_fields is not None:  # metadata and tokenizer made from the folder; each tensor's
        # header entry (~60 bytes) and alignment (~16); the biases the plan does not list
        from quanta.model.formats.gguf_hf import metadata_bytes

        return metadata_bytes(gguf_fields) + 192 + 76 * len(entries) + layout.bias_bytes
    if kind:  # the source's metadata and tokenizer, quanta's mark and checksum, alignment padding
        return layout.source_bytes - sum(s.source_bytes for s in layout.tensors) + 192 + 16 * len(entries)
    if opts.format == "compressed-tensors":  # the tokenizer; config.json with its scheme and the
        # float modules' names; the safetensors header: ~110 bytes a tensor (a layer stores three)
        linear = sum(e.method is not None for e in entries)
        return layout.tokenizer_bytes + 2500 + 110 * (len(entries) + 2 * linear) + 8
    # the tokenizer; quant_config.json: ~1.7 kB and ~200 bytes a layer's spec; the safetensors
    # header: ~110 bytes a tensor (a layer stores two, an embedding three); with the sensitivity
    # pass the config also carries the chosen map: ~64 bytes a unit
    linear = sum(e.method is not None and e.role != "embedding" for e in entries)
    embedding = sum(e.method is not None and e.role == "embedding" for e in entries)
    stored = len(entries) + linear + 2 * embedding
    return layout.tokenizer_bytes + 1700 + 200 * linear + 110 * stored + 8 + \
        (300 + 64 * (linear + embedding) if refine else 0)


def plan_for(layout: Layout, opts: Options) -> QuantPlan:
    """The :class:`QuantPlan` of ``opts`` on ``layout`` (see the module's docstring), with the
    options as the family needs them (:func:`options_for`: the command runs with those too)."""
    from quanta.model.quantize.methods import METHODS

    opts = options_for(layout, opts)

    gguf_fields = _format_checks(layout, opts)
    group = BLOCK if opts.mixed or opts.group_size is None else opts.group_size
    types = _preset_types(layout, opts)
    kind = (PRESETS[opts.type].base if opts.type else gguf_type(opts.bits, opts.sym, group)) \
        if opts.format == "gguf" else None
    needs = METHODS[opts.method].needs_calibration
    refine = _refine(opts, needs)
    decided = (_decide(s, opts, layout, types.get(s.name, kind)) for s in layout.tensors)
    entries = tuple(e for e in decided if e is not None)
    if kind:
        _check_stacks(layout.family, entries)
    tensor_bytes = sum(e.nbytes for e in entries)
    fixed = _fixed_bytes(layout, opts, entries, kind, gguf_fields, refine)
    budget = unit_budget = None
    # the units the sensitivity pass chooses for: the quantized layers, and the embedding unless
    # --embedding-bits fixes it; ``floats``: the bytes of every other tensor
    unit = [e.method is not None and (e.role != "embedding" or opts.embedding_bits is None) for e in entries]
    units = sum(math.prod(e.shape) for e, u in zip(entries, unit) if u)
    floats = sum(e.nbytes for e, u in zip(entries, unit) if not u)
    size_target = opts.target_size
    if opts.type and refine:  # llama.cpp's file: its tensors in the preset's types, the same
        # metadata, less quanta's mark and checksum and the alignment padding (a bound from below)
        size_target = tensor_bytes + fixed - 192 - 16 * len(entries)
    if size_target is not None:
        budget = size_target
    elif opts.target_bpw is not None:
        unit_budget = int(float(opts.target_bpw) * units / 8)
        budget = unit_budget + fixed + floats
    elif refine:  # the default's sharing: the bytes of the plan's uniform units
        unit_budget = sum(e.nbytes for e, u in zip(entries, unit) if u)
    calibrated = needs or refine is not None
    speed = machine_speed(shapes_of(layout).hidden) if calibrated else None  # at the model's width

    def costed(lattice: bool) -> tuple[Cost, int]:
        return _fit_memory(opts, lambda sb: for_plan(
            layout, entries, opts.method, calibrated=calibrated, sensitivity=refine is not None,
            windows=opts.calib_samples, tokens=opts.calib_len, gguf=kind is not None,
            hessian=METHODS[opts.method].needs_hessian, speed=speed,
            parked=opts.format != "compressed-tensors", slice_bytes=sb, sliced=opts.format == "quanta",
            lattice_offered=lattice))

    lattice = lattice_offered(opts, unit_budget, units)
    cost, slice_bytes = costed(lattice)
    plan = QuantPlan(layout.source, layout.architecture, opts.format, opts.method, needs, kind,
                     opts.sym or bool(kind and ggml_format(kind).sym),
                     ggml_format(kind).group_size if kind else opts.group_size,
                     refine, budget, 0, entries, cost, slice_bytes=slice_bytes)
    # the output keeps the plan: its record's bytes (as JSON in the config or a GGUF string)
    text = json.dumps(plan.record(), indent=None if kind else 2)
    fixed += len(text) + (0 if kind else 4 * text.count("\n"))
    if size_target is not None:  # an upper bound of the rest: alignment, lengths of text
        most = fixed + 16 * len(entries) + 64 if opts.format == "gguf" else int(fixed * 1.02) + 4096
        unit_budget = budget - most - floats
        if unit_budget <= 0:
            what = f"--target-size {opts.target_size}" if opts.target_size is not None else \
                f"--type {opts.type} (llama.cpp's file: {size_target:,} bytes)"
            raise ConfigError(f"{what}: the output's float tensors, tokenizer "
                              f"and metadata alone take about {(most + floats) / 1e6:.2f} MB")
        offered = lattice_offered(opts, unit_budget, units)
        if offered != lattice:  # a size's budget offers them: the time counts their pricing
            lattice = offered  # (no bytes change)
            cost, slice_bytes = costed(lattice)
            plan = dataclasses.replace(plan, cost=cost, slice_bytes=slice_bytes)
    predicted = budget if budget is not None else tensor_bytes + fixed
    return dataclasses.replace(plan, predicted_bytes=predicted, unit_budget=unit_budget, lattice=lattice,
                               notes=_notes(layout, kind),
                               budget_bytes=budget if budget is not None else (predicted if refine else None))
