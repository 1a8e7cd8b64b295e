"""Run a GGUF file of the Llama family (llama, mistral written as llama, qwen2, qwen3, phi3) directly
from its memory map with quanta's compiled kernels: no float copy of the weights, no PyTorch.

The file's tensors stay where the map put them (resident memory ≈ the pages read, at most the
file); before each matrix product the activations are quantized to 8 bits per 32 values and
multiplied against the stored blocks in integers (``blocks.h``; every GGML type quanta writes:
F32, F16, Q8_0, Q4_0/Q4_1, Q5_0/Q5_1, IQ4_NL, Q2_K…Q6_K, IQ4_XS and the lattice types IQ2_XXS,
IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, whose grids :func:`load_grid` hands the kernels), the rest of a
step — norms, rotary embedding, attention over a float32 key/value cache — in C too
(``engine.h``), every product split by rows over a thread pool sized by
:func:`quanta.threads.threads`.

Where a file is outside this path (another architecture, a tensor type or rotary scaling it does
not read), :func:`why_not` says why in one line and the caller runs the PyTorch model instead.

The activations' 8-bit rounding is the one approximation: each product's error is bounded by
``Σ|w| · d / 2`` per 32 inputs (``d`` the chunk's step, its largest |x| / 127); the tests hold
the kernels to that bound and to the exact product of the rounded activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quanta.model.arch import COMPILED
from quanta.model.formats.gguf_read import field

#: the GGUF architectures this path runs (the architecture table's list); each one's rotary
#: layout comes from that table too (:func:`rope_pairs`)
ARCHS = COMPILED


def rope_pairs(arch: str) -> bool:
    """Whether ``arch``'s files rotate pairs of neighbours — llama.cpp's converter permuted their
    Q/K rows (``Architecture.rope_rows``) — rather than halves (NeoX order, kept as they are)."""
    from quanta.model.arch import for_gguf

    return bool(for_gguf(arch).rope_rows)

#: a block's matrices and vectors in ``engine.h``'s order (GGUF kinds)
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
VECTORS = ("attn_norm", "ffn_norm", "attn_q_norm", "attn_k_norm", "attn_q.bias", "attn_k.bias", "attn_v.bias")


#: the formats whose output head takes 16-bit activations (beyond the wide() formats, which
#: always do): the 5-bit ones — GGML numbers 6 (Q5_0), 7 (Q5_1) and 13 (Q5_K); see :class:`NativeLM`
HEAD16_TYPES = frozenset({6, 7, 13})


class Unsupported(Exception):  # noqa: N818 (a reason, not a failure)
    """The file is outside this path (the message says why)."""


@dataclass
class NativeConfig:
    """What generation and evaluation ask of a model's configuration (transformers' names)."""

    architecture: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    bos_token_id: int | None
    eos_token_id: int | None
    sliding_window: int = 0


def _kernels() -> Any:
    from quanta.model.runtime._dispatch import kernels

    return kernels


def _config(r: Any, tensors: dict) -> NativeConfig:
    arch = field(r, "general.architecture")
    if arch not in ARCHS:
        raise Unsupported(f"architecture {arch!r} runs on the PyTorch path (native: {', '.join(ARCHS)})")

    def g(key: str, default: Any = None) -> Any:
        return field(r, f"{arch}.{key}", default)

    try:
        n_head = int(g("attention.head_count"))
        embd = int(g("embedding_length"))
        head_dim = int(g("attention.key_length") or embd // n_head)
        return NativeConfig(
            arch,
            int(tensors["token_embd.weight"].shape[1]),
            embd,
            int(g("block_count")),
            n_head,
            int(g("attention.head_count_kv", n_head)),
            head_dim,
            int(g("feed_forward_length")),
            int(g("context_length", 2048)),
            float(g("attention.layer_norm_rms_epsilon", 1e-5)),
            field(r, "tokenizer.ggml.bos_token_id"),
            field(r, "tokenizer.ggml.eos_token_id"),
            int(g("attention.sliding_window", 0) or 0),
        )
    except (TypeError, ValueError, KeyError) as e:
        raise Unsupported(f"missing or malformed {arch} metadata ({e})") from None


def base_inv_freq(theta: float, dims: int) -> np.ndarray:
    """The rotary embedding's unscaled inverse frequencies ``theta^(−2i/dims)`` (float32, dims / 2)."""
    return (1.0 / (theta ** (np.arange(0, dims, 2, dtype=np.float32) / np.float32(dims)))).astype(np.float32)


def _inv_freq(r: Any, cfg: NativeConfig, tensors: dict) -> np.ndarray:
    """The rotary inverse frequencies, divided by a ``rope_freqs`` tensor's factors (Llama 3) or a
    linear scaling factor, as llama.cpp applies them."""
    arch = cfg.architecture
    theta = float(field(r, f"{arch}.rope.freq_base", 10000.0))
    dims = int(field(r, f"{arch}.rope.dimension_count", cfg.head_dim) or cfg.head_dim)
    if dims != cfg.head_dim:
        raise Unsupported(f"a partial rotary embedding ({dims} of {cfg.head_dim} dimensions)")
    inv = base_inv_freq(theta, dims)
    scaling = field(r, f"{arch}.rope.scaling.type")
    if scaling not in (None, "none", "linear"):
        raise Unsupported(f"rotary scaling {scaling!r}")
    if scaling == "linear":
        inv = inv / np.float32(field(r, f"{arch}.rope.scaling.factor", 1.0))
    if any(name.startswith("rope_factors") for name in tensors):
        raise Unsupported("rope_factors tensors (long-context rotary scaling)")
    t = tensors.get("rope_freqs.weight")
    if t is not None:
        if arch != "llama":
            raise Unsupported(f"rope_freqs factors on {arch}")
        inv = inv / _vector(t)
    return np.ascontiguousarray(inv, dtype=np.float32)


def _vector(t: Any) -> np.ndarray:
    from gguf import GGMLQuantizationType

    if GGMLQuantizationType(t.tensor_type) not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        raise Unsupported(f"{t.name} is {GGMLQuantizationType(t.tensor_type).name} (F32 or F16 read)")
    return np.ascontiguousarray(np.asarray(t.data).reshape(-1), dtype=np.float32)


def load_grid(kernels: Any, kind: int) -> None:
    """Give ``kernels`` (a build of ``_native``) the grid of GGML type ``kind`` when it is a lattice
    type (IQ2_XXS … IQ3_S) whose grid that build has not loaded: the gguf package's table, as
    :mod:`quanta.model.formats.lattice` reads it — the points' magnitudes, whole numbers the
    kernels keep in signed bytes (at most 127; llama.cpp's grids reach 62)."""
    if kernels.sizes(kind)[0]:  # read already: another type, or a grid loaded before
        return
    from gguf import GGMLQuantizationType

    from quanta.model.formats.lattice import TYPES

    name = next((n for n in TYPES if int(GGMLQuantizationType[n]) == kind), None)
    if name is None:  # a type the kernels do not read (quanta's own repacked grids are read)
        return
    values = TYPES[name].lattice.values
    grid = np.clip(values, 0, 127).astype(np.uint8)
    if not np.array_equal(grid, values):
        raise Unsupported(f"{name}: the gguf package's grid is not in whole numbers from 0 to 127")
    kernels.load_grid(kind, np.ascontiguousarray(grid))


def _matrix(t: Any) -> tuple[int, np.ndarray, int]:
    """(GGML type, the stored rows as uint8 ``(rows, bytes per row)`` — a view of the map —, columns)."""
    from gguf import GGMLQuantizationType

    kind = int(t.tensor_type)
    load_grid(_kernels(), kind)
    size, nbytes = _kernels().sizes(kind)
    if not size:
        raise Unsupported(f"{t.name} is {GGMLQuantizationType(kind).name}, which the kernels do not read")
    cols = int(t.shape[0])
    rows = int(np.prod([int(s) for s in t.shape[1:]])) if len(t.shape) > 1 else 1
    if cols % size or cols % 32:
        raise Unsupported(f"{t.name}: {cols} columns (a multiple of 32 needed)")
    raw = np.asarray(t.data).reshape(-1).view(np.uint8)
    if raw.size != rows * cols // size * nbytes:
        raise Unsupported(f"{t.name}: {raw.size} bytes, expected {rows * cols // size * nbytes}")
    return kind, raw.reshape(rows, -1), cols


@dataclass
class _Output:
    logits: Any


class NativeLM:
    """A model run by the compiled kernels: :meth:`decoder` gives a :class:`_native.Model`
    whose ``forward(ids)`` returns float32 logits (numpy).

    ``tensors``: GGUF names → tensors as gguf-py's reader gives them (``tensor_type``, ``shape``
    in GGUF order, ``data``) — a GGUF file's (:func:`open_native`) or a quanta folder's repacked
    into the kernels' blocks (:mod:`quanta.model.runtime.native_folder`); ``neox``: the rotary
    embedding turns halves (else pairs of neighbours, llama.cpp's permuted rows); ``keep``: what
    the tensors point into (a file's map), held as long as the model.

    ``head16``: an output head in a 5-bit format (:data:`HEAD16_TYPES`) multiplies 16-bit
    activations, as the formats of 6 bits and more do everywhere (``blocks.h``'s wide()). The
    head's products are the logits themselves — no norm or nonlinearity after them absorbs the
    rounding: 8-bit activations against quanta's ``--type Q4_K_M`` file's Q5_1 head added 3.9 of
    its 6.9 % KL divergence over the weights-only model, and 16 bits there cost about 5 % of its
    decode speed; against a 4-bit head 16 bits would save only about 1.4 % of KL divergence for
    the same 5–6 % of speed, so 4-bit heads keep 8 bits (docs/BENCHMARKS.md). Set it False
    before :meth:`decoder` to measure."""

    is_causal_lm = True
    head16 = True

    def __init__(self, tensors: dict, config: NativeConfig, inv_freq: np.ndarray, path: Path, *,
                 neox: bool, threads: int | None = None, keep: Any = None) -> None:
        from quanta.threads import threads as default_threads

        self.path = path
        self.tensors = tensors
        self.config = config
        self.inv_freq = inv_freq
        self.neox = neox
        self.threads = threads or default_threads()
        self._keep = keep
        self._parts = self._collect()
        self._model: Any = None
        self.metadata: dict = {}

    def _collect(self) -> dict:
        """Every matrix and vector the engine reads, checked before any is used."""
        cfg, t = self.config, self.tensors
        parts: dict = {
            "embd": _matrix(t["token_embd.weight"]),
            "output": _matrix(t.get("output.weight", t["token_embd.weight"])),
            "out_norm": _vector(self._need("output_norm.weight")),
        }
        for name in ("embd", "output"):
            if parts[name][2] != cfg.hidden_size:
                raise Unsupported(f"{name} has {parts[name][2]} columns, the model {cfg.hidden_size}")
        if parts["output"][1].shape[0] != cfg.vocab_size:
            raise Unsupported(f"output has {parts['output'][1].shape[0]} rows, the vocabulary "
                              f"{cfg.vocab_size}")
        heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        if kv_heads < 1 or heads % kv_heads or cfg.head_dim % 2:
            raise Unsupported(f"{cfg.num_attention_heads} heads over {cfg.num_key_value_heads} key/value "
                              f"heads of {cfg.head_dim} dimensions")
        self._check_vector("output_norm.weight", parts["out_norm"], cfg.hidden_size)
        for i in range(cfg.num_hidden_layers):
            parts.update(self._collect_block(i))
        extra = [
            n
            for n in t
            if n.startswith("blk.")
            and n.split(".", 2)[2].rsplit(".", 1)[0] not in (*MATRICES, *VECTORS[:4], "attn_qkv")
        ]
        if extra:
            raise Unsupported(
                f"tensor {extra[0]} has no place in the {cfg.architecture} block this path runs"
            )
        return parts

    def _block_matrices(self, i: int) -> list[tuple[int, np.ndarray, int]]:
        """Block ``i``'s seven matrices in :data:`MATRICES`' order; Phi-3's fused ``attn_qkv``
        and ``ffn_up`` (gate rows, then up rows) split into row views."""
        cfg, t = self.config, self.tensors
        q_rows, kv_rows = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
        fused_qkv = f"blk.{i}.attn_qkv.weight" in t
        if fused_qkv:
            kind, raw, cols = _matrix(t[f"blk.{i}.attn_qkv.weight"])
            if raw.shape[0] != q_rows + 2 * kv_rows:
                raise Unsupported(
                    f"blk.{i}.attn_qkv has {raw.shape[0]} rows, not q + k + v's {q_rows + 2 * kv_rows}"
                )
            qkv = [
                (kind, raw[a:b], cols)
                for a, b in (
                    (0, q_rows),
                    (q_rows, q_rows + kv_rows),
                    (q_rows + kv_rows, q_rows + 2 * kv_rows),
                )
            ]
        else:
            qkv = [_matrix(self._need(f"blk.{i}.{k}.weight")) for k in MATRICES[:3]]
        out = [*qkv, _matrix(self._need(f"blk.{i}.attn_output.weight"))]
        if f"blk.{i}.ffn_gate.weight" in t:
            out += [_matrix(t[f"blk.{i}.ffn_gate.weight"]), _matrix(self._need(f"blk.{i}.ffn_up.weight"))]
        else:
            kind, raw, cols = _matrix(self._need(f"blk.{i}.ffn_up.weight"))
            n = cfg.intermediate_size
            if raw.shape[0] != 2 * n:
                raise Unsupported(f"blk.{i}: no ffn_gate, and ffn_up has {raw.shape[0]} rows, not 2 × {n}")
            out += [(kind, raw[:n], cols), (kind, raw[n:], cols)]
        return [*out, _matrix(self._need(f"blk.{i}.ffn_down.weight"))]

    def _collect_block(self, i: int) -> dict:
        """Block ``i``'s matrices and vectors, every shape the engine relies on checked: a
        malformed file is refused, never read past its tensors."""
        cfg, t = self.config, self.tensors
        e, ff = cfg.hidden_size, cfg.intermediate_size
        q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
        shapes = ((q, e), (kv, e), (kv, e), (e, q), (ff, e), (ff, e), (e, ff))
        lengths = (e, e, cfg.head_dim, cfg.head_dim, q, kv, kv)
        parts: dict = {}
        for j, m in enumerate(self._block_matrices(i)):
            if (m[1].shape[0], m[2]) != shapes[j]:
                raise Unsupported(f"blk.{i}.{MATRICES[j]} is {m[1].shape[0]} × {m[2]}, the header implies "
                                  f"{shapes[j][0]} × {shapes[j][1]}")
            parts[i, "m", j] = m
        for j, kind in enumerate(VECTORS):
            name = f"blk.{i}.{kind}" + ("" if kind.endswith(".bias") else ".weight")
            if name in t:
                parts[i, "v", j] = self._check_vector(name, _vector(t[name]), lengths[j])
            elif j < 2:
                raise Unsupported(f"no {name} tensor")
        return parts

    @staticmethod
    def _check_vector(name: str, v: np.ndarray, n: int) -> np.ndarray:
        if v.shape != (n,):
            raise Unsupported(f"{name} has {v.size} values, the header implies {n}")
        return v

    def _need(self, name: str) -> Any:
        if name not in self.tensors:
            raise Unsupported(f"no {name} tensor")
        return self.tensors[name]

    def decoder(self, max_len: int) -> Any:
        """The engine, its cache holding ``max_len`` tokens (rebuilt when a longer one is asked
        for; the weights are not copied either way), reset to an empty sequence."""
        if self._model is None or self._model.max_len < max_len:
            self._model = None  # free the old cache first
            self._model = self._build(max_len)
        self._model.reset()
        return self._model

    def _build(self, max_len: int) -> Any:
        cfg = self.config
        ints = (
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
            cfg.intermediate_size,
            cfg.vocab_size,
            max_len,
            int(self.neox),
            self.threads,
            cfg.sliding_window,
        )
        model = _kernels().Model(ints, (cfg.rms_norm_eps, cfg.head_dim**-0.5, 1.0), self.inv_freq)
        p = self._parts
        model.set_matrix(-1, 0, *p["embd"][:2], p["embd"][2])
        head = p["output"]
        model.set_matrix(-2, 0, *head[:2], head[2], self.head16 and head[0] in HEAD16_TYPES)
        model.set_vector(-2, 0, p["out_norm"])
        for key, val in p.items():
            if isinstance(key, tuple):
                i, what, j = key
                if what == "m":
                    model.set_matrix(i, j, val[0], val[1], val[2])
                else:
                    model.set_vector(i, j, val)
        return model

    def __call__(self, ids: Any) -> Any:
        """Logits of every position of a batch of one sequence ``(1, n)`` (a tensor or array),
        from an empty cache, as transformers' output: ``.logits`` a float32 torch tensor
        ``(1, n, vocab)`` (evaluation compares them with the PyTorch models')."""
        import torch

        seq = np.asarray(ids).reshape(-1)
        engine = self.decoder(len(seq))
        return _Output(torch.from_numpy(engine.forward(seq, True))[None])


@dataclass
class TensorView:
    """A tensor of a mapped file, as the code above reads gguf-py's (GGUF dimension order)."""

    name: str
    tensor_type: int
    shape: tuple[int, ...]
    n_bytes: int
    data: np.ndarray  # its bytes in the map, typed for F32/F16


class _Mapped:
    """A GGUF file as ``fields`` and ``tensors``, from quanta's fast header reader and one
    read-only map of the file: gguf-py's reader makes a numpy view of every token and merge
    (about 1.5 s on SmolLM2's header); this reads it in well under a tenth of that."""

    def __init__(self, path: Path) -> None:
        from gguf import GGMLQuantizationType

        from quanta.model.formats.gguf_header import read_header

        head = read_header(path)
        self.fields = head.fields
        self.map = np.memmap(path, dtype=np.uint8, mode="r")
        self.tensors = []
        for t in head.tensors:
            kind = GGMLQuantizationType[t.ggml_type]
            raw = self.map[t.offset : t.offset + t.n_bytes]
            if kind in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                raw = raw.view(np.float32 if kind == GGMLQuantizationType.F32 else np.float16)
            self.tensors.append(TensorView(t.name, int(kind), tuple(reversed(t.shape)), t.n_bytes, raw))


def _from_gguf(r: Any, path: Path, threads: int | None = None) -> NativeLM:
    tensors = {t.name: t for t in r.tensors}
    if "token_embd.weight" not in tensors:
        raise Unsupported("no token_embd.weight tensor")
    cfg = _config(r, tensors)
    return NativeLM(tensors, cfg, _inv_freq(r, cfg, tensors), path, neox=not rope_pairs(cfg.architecture),
                    threads=threads, keep=r)


def why_not(path: Path | str) -> str | None:
    """Why ``path`` cannot run natively, or None when it can (the file is only mapped)."""
    try:
        open_native(path)
    except Unsupported as e:
        return str(e)
    return None


def open_native(path: Path | str, threads: int | None = None) -> NativeLM:
    """The GGUF file ``path`` as a :class:`NativeLM` (raises :class:`Unsupported` with the
    reason, or InputError for a file that is not GGUF)."""
    p = Path(path)
    return _from_gguf(_Mapped(p), p, threads)


def load_native(path: Path, verify: bool = True) -> tuple[tuple[Any, Any] | None, str]:
    """``((NativeLM, tokenizer), "")`` for a GGUF file the kernels run, else ``(None, why)``;
    ``verify``: check the checksum quanta wrote into its own files first."""
    from quanta.model.formats.gguf_read import build_tokenizer

    r = _Mapped(path)
    try:
        lm = _from_gguf(r, path)
    except Unsupported as e:
        return None, str(e)
    if verify:
        from quanta.model.formats.integrity import check_gguf

        check_gguf(r, str(path))
    lm.metadata = {
        "architecture": lm.config.architecture,
        "name": field(r, "general.name"),
        "bos_token_id": lm.config.bos_token_id,
        "eos_token_id": lm.config.eos_token_id,
        "chat_template": field(r, "tokenizer.chat_template"),
    }
    return (lm, build_tokenizer(r, path)), ""


class NativeStep:
    """:func:`quanta.model.runtime.generate.generate_ids`' stepper over a :class:`NativeLM`."""

    def __init__(self, lm: NativeLM, max_len: int) -> None:
        self.engine = lm.decoder(max_len)

    def forward(self, ids: list[int]) -> np.ndarray:
        return self.engine.forward(ids)


__all__ = [
    "ARCHS",
    "NativeConfig",
    "NativeLM",
    "NativeStep",
    "TensorView",
    "Unsupported",
    "base_inv_freq",
    "load_native",
    "open_native",
    "why_not",
]
