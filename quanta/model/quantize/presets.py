"""llama.cpp's file types ("presets": ``Q4_K_M``, ``Q3_K_S``, …) as a table: each tensor's GGML
type by llama.cpp's rules, so quanta can match a preset's file size or its exact recipe.

``llama-quantize`` turns a file type into one type per tensor (``llama_tensor_get_type`` in
llama.cpp's ``src/llama-quant.cpp``, the 0.3.36 sources the benches build): a base type, some
tensors raised ("more bits" for part of the ``attn_v`` and ``ffn_down`` layers, the output head
at Q6_K), and a fallback for rows its blocks do not divide (a K-quant needs rows of a multiple
of 256). :func:`tensor_type` applies the rules that concern the families of
:mod:`quanta.model.arch`, with an importance matrix (quanta always calibrates a preset): a stack
of experts (``ffn_down_exps``) follows its kind's rules (llama.cpp counts one per block), and a
model of exactly 8 experts (Mixtral's count) takes llama.cpp's extra rules for it. The
allocator then shares out the file's bytes (``--type``), or the types are kept as they are
(``--type … --uniform``). No torch, no weights: the plan uses it before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from quanta.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A llama.cpp file type: its name and base type."""

    name: str
    base: str


#: llama.cpp's file types quanta makes, smallest first (``llama-quantize --help``)
PRESETS = {p.name: p for p in (
    Preset("IQ2_XXS", "IQ2_XXS"), Preset("IQ2_XS", "IQ2_XS"), Preset("IQ2_S", "IQ2_XS"),
    Preset("IQ2_M", "IQ2_S"), Preset("IQ3_XXS", "IQ3_XXS"), Preset("IQ3_XS", "IQ3_S"),
    Preset("IQ3_S", "IQ3_S"), Preset("IQ3_M", "IQ3_S"),
    Preset("Q2_K", "Q2_K"), Preset("Q2_K_S", "Q2_K"), Preset("Q3_K_S", "Q3_K"), Preset("Q3_K_M", "Q3_K"),
    Preset("Q3_K_L", "Q3_K"), Preset("IQ4_XS", "IQ4_XS"), Preset("IQ4_NL", "IQ4_NL"), Preset("Q4_0", "Q4_0"),
    Preset("Q4_K_S", "Q4_K"), Preset("Q4_K_M", "Q4_K"), Preset("Q4_1", "Q4_1"), Preset("Q5_0", "Q5_0"),
    Preset("Q5_K_S", "Q5_K"), Preset("Q5_K_M", "Q5_K"), Preset("Q5_1", "Q5_1"), Preset("Q6_K", "Q6_K"),
    Preset("Q8_0", "Q8_0"))}

#: llama.cpp's type for rows a type's blocks do not divide (then F16 if that does not fit either)
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "IQ4_XS": "IQ4_NL", "Q4_K": "Q5_0", "Q5_K": "Q5_1",
            "Q6_K": "Q8_0", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL", "IQ3_XXS": "IQ4_NL",
            "IQ3_S": "IQ4_NL"}

#: the presets of llama.cpp's own branch of rules (its 2-bit lattice presets)
IQ2 = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M")


def check_preset(name: str) -> Preset:
    """The preset ``name``, or a one-line :class:`ConfigError` listing them."""
    if name not in PRESETS:
        raise ConfigError(f"--type {name!r}: not a llama.cpp file type quanta makes "
                          f"(choose from {', '.join(PRESETS)})")
    return PRESETS[name]


def lattice_preset(name: str | None) -> bool:
    """Whether preset ``name`` has a lattice type (IQ2_XXS … IQ3_S) as its base."""
    from quanta.model.formats.weight import BLOCK_TYPES

    return bool(name) and BLOCK_TYPES[check_preset(name).base].lattice


def more_bits(i: int, n: int) -> bool:
    """llama.cpp's ``use_more_bits``: the first and last eighth of the layers, and every third
    between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _iq2(p: str, kind: str, i: int, n: int, gqa: int, experts: int) -> str | None:
    """llama.cpp's rules for the 2-bit lattice presets (:data:`IQ2`), which replace the others;
    None: the base type."""
    wide = p in ("IQ2_S", "IQ2_M")
    if kind == "attn_v":
        return "Q4_K" if gqa >= 4 or experts >= 4 else "IQ3_S" if wide else "Q2_K"
    if kind == "attn_k" and experts == 8:
        return "Q4_K"
    if kind == "ffn_down" and i < n // 8:
        return "IQ3_S" if wide else "Q2_K"
    if kind == "attn_output":
        return "Q5_K" if experts == 8 else "IQ3_S" if wide else None
    return None


def _attn_v(p: str, i: int, n: int, gqa: int) -> str | None:
    grouped = "Q4_K" if gqa >= 4 else None
    rules = {"IQ3_XXS": grouped, "IQ3_XS": grouped, "IQ3_S": grouped, "IQ3_M": "Q4_K",
             "Q2_K": "Q4_K" if gqa >= 4 else "Q3_K", "Q2_K_S": grouped,
             "Q3_K_M": "Q5_K" if i < 2 else "Q4_K", "Q3_K_L": "Q5_K",
             "IQ4_NL": "Q5_K" if gqa >= 4 else None, "IQ4_XS": "Q5_K" if gqa >= 4 else None,
             "Q4_K_M": "Q6_K" if more_bits(i, n) else None, "Q5_K_M": "Q6_K" if more_bits(i, n) else None,
             "Q4_K_S": "Q5_K" if i < 4 else None}
    return rules.get(p)


def _ffn_down(p: str, i: int, n: int, experts: int = 0) -> str | None:
    rules = {"IQ3_M": "Q4_K" if i < n // 8 or (experts == 8 and more_bits(i, n)) else None,
             "Q2_K": "Q3_K", "Q2_K_S": "Q4_K" if i < n // 8 else None,
             "Q3_K_M": "Q5_K" if i < n // 16 else "Q4_K", "Q3_K_L": "Q5_K",
             "Q4_K_M": "Q6_K" if more_bits(i, n) else None, "Q5_K_M": "Q6_K" if more_bits(i, n) else None,
             "Q4_K_S": "Q5_K" if i < n // 8 else None,
             "Q4_0": "Q4_1" if i < n // 8 else None, "Q5_0": "Q5_1" if i < n // 8 else None}
    return rules.get(p)


_RAISED = {"attn_output": {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_XXS": "IQ3_S",
                           "IQ3_M": "Q4_K"},
           "attn_qkv": {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K",
                        "IQ3_M": "Q4_K"},
           "attn_k": {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"},
           "attn_q": {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}}
#: llama.cpp's attn_output for a model of 8 experts: Q5_K under these presets, else the base
_OUTPUT_8 = ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS", "IQ3_XS", "IQ3_XXS", "IQ3_S",
             "IQ3_M")
#: llama.cpp's untied token embedding under these presets (else the base type)
_TOKEN_EMBD = {"IQ2_XXS": "Q2_K", "IQ2_XS": "Q2_K", "IQ2_S": "IQ3_S", "IQ2_M": "IQ3_S", "IQ3_XXS": "IQ3_S"}


def _rule(preset: str, base: str, kind: str, layer: int, n_layers: int, gqa: int, experts: int) -> str:
    """The type of a tensor other than the output head before the fallback."""
    if kind == "token_embd":
        return _TOKEN_EMBD.get(preset, base)
    if preset in IQ2:
        return _iq2(preset, kind, layer, n_layers, gqa, experts) or base
    if kind in ("attn_v", "attn_k") and experts == 8:  # "trades just ~128MB" (llama.cpp)
        return "Q8_0"
    if kind == "attn_v":
        return _attn_v(preset, layer, n_layers, gqa) or base
    if kind == "ffn_down":
        return _ffn_down(preset, layer, n_layers, experts) or base
    if kind in ("ffn_gate", "ffn_up"):
        return "IQ3_XXS" if preset == "IQ3_XS" and n_layers // 8 <= layer < 7 * n_layers // 8 else base
    if kind == "attn_output" and experts == 8:
        return "Q5_K" if preset in _OUTPUT_8 else base
    return _RAISED[kind].get(preset, base) if kind in _RAISED else base


def tensor_type(preset: str, kind: str, layer: int, n_layers: int, cols: int, *, gqa: int = 1,
                experts: int = 0) -> str:
    """The type llama.cpp's ``preset`` gives one tensor: ``kind`` its GGUF kind ("attn_v",
    "ffn_down", "ffn_down_exps", …, "output" for the output head or a tied token embedding,
    "token_embd"), ``layer`` its block (of ``n_layers``), ``cols`` its row width, ``gqa`` the
    query heads per key/value head, ``experts`` the model's experts per block (0: dense); then the
    fallback for rows its blocks do not divide ("F16": none fits)."""
    from quanta.model.formats.weight import BLOCK_TYPES

    base = check_preset(preset).base
    kind = kind.removesuffix("_exps")
    if kind == "output":
        t = "Q8_0" if cols % BLOCK_TYPES[base].block or base == "Q8_0" else \
            "Q5_K" if preset in (*IQ2, "IQ3_XXS") else "Q6_K"
    else:
        t = _rule(preset, base, kind, layer, n_layers, gqa, experts)
    if cols % BLOCK_TYPES[t].block:
        t = FALLBACK.get(t, t)
        if cols % BLOCK_TYPES[t].block:
            return "F16"
    return t

