"""Architectures as data: one table per model family, read by the planner, the loaders, the
GGUF exporter, the mixed-precision allocator and the decode path.

An :class:`Architecture` names a family's Hugging Face classes, its GGUF ``general.architecture``,
where its blocks sit, each block's Linear layers in order (and which of them are fed the same
input), its norms, embedding and head, and which GGUF tensors llama.cpp stores with the rotary
rows permuted. Hugging Face ↔ GGUF tensor names come from the ``gguf`` package's
``tensor_mapping`` (llama.cpp's converter's own table), never from a copy: :meth:`Architecture.kinds`
asks it once per family.

Adding a family is one :class:`Architecture` entry in :data:`ARCHITECTURES` (see
docs/ARCHITECTURE.md, "Add an architecture"). No torch at import: planning reads it before any
weight.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from quanta.errors import ConfigError

#: the GGUF architectures quanta's compiled kernels run (:mod:`quanta.model.runtime.native`)
COMPILED = ("llama", "qwen2", "qwen3", "phi3")


@dataclass(frozen=True)
class Architecture:
    """One model family.

    linears: each block's Linear layers (Hugging Face names relative to the block), in the
    order the block runs them; shared_inputs: groups of them fed the same tensor (one set of
    calibration statistics, one AWQ scale); norms: each block's norm weights; rope_rows: GGUF
    kinds whose rows llama.cpp permutes for its rotary layout, with the config key of their
    head count; dims: each linear's (out, in) as names of :meth:`Architecture.sizes`; norm_dims:
    each norm's size by the same names (default: all "hidden"); folds: (producer, consumers)
    pairs where the producer (a norm or a Linear) computes the consumers' one input, so that AWQ
    can fold input scales into it (:mod:`quanta.model.quantize.awq`); gguf_io: whether quanta
    reads and writes the family's GGUF files yet."""

    name: str
    gguf_arch: str
    hf_class: str
    hf_config: str
    model_type: str
    blocks: str
    linears: tuple[str, ...]
    shared_inputs: tuple[tuple[str, ...], ...]
    norms: tuple[str, ...]
    embedding: str
    final_norm: str | None = None
    head: str | None = None
    rope_rows: tuple[tuple[str, str], ...] = ()
    dims: tuple[tuple[str, str], ...] = ()
    norm_dims: tuple[str, ...] = ()
    folds: tuple[tuple[str, tuple[str, ...]], ...] = ()
    causal: bool = True
    gguf_io: bool = True  # quanta reads and writes this family's GGUF files
    scaled_embedding: bool = False  # the embedding module scales its output (kept float)
    #: what GGUF adds to each RMS norm's weight (Gemma's norms scale by 1 + weight; llama.cpp's
    #: converter stores 1 + weight and multiplies by it)
    norm_offset: float = 0.0
    #: a sparse mixture of experts: the block module holding one MLP per expert (quanta's
    #: :class:`~quanta.model.sources.experts.SplitExperts`, "mlp.experts"), each expert's Linear
    #: layers and their (out, in) sizes, and the router (its weight stays float, as llama.cpp
    #: keeps it). An expert's layers are named ``{experts}.{e}.{linear}``; GGUF stacks each kind
    #: into one tensor of all the block's experts (``ffn_gate_exps``).
    experts: str | None = None
    expert_linears: tuple[str, ...] = ()
    expert_dims: tuple[tuple[str, str], ...] = ()
    router: str | None = None

    @property
    def compiled(self) -> bool:
        """Whether quanta's compiled kernels run this family's models
        (:mod:`quanta.model.runtime.native`): a quanta folder's sensitivity pass then also offers
        the grids only they run fast (:func:`quanta.model.formats.weight.sym_groups`)."""
        return self.causal and self.gguf_arch in COMPILED

    @property
    def gemma(self) -> bool:
        """A Gemma family: llama.cpp's Gemma keys (soft-capping, sliding window, local rotary
        base) and the settings its Gemma graphs fix (:mod:`quanta.model.formats.gguf_hf`)."""
        return self.gguf_arch in ("gemma2", "gemma3")

    @staticmethod
    def sizes(config: dict) -> dict[str, int]:
        """The named sizes of a Hugging Face config: hidden, inter (the MLP's), head (one
        attention head's width: ``head_dim``, or hidden / heads), q and kv (the query's and the
        key/value projections' outputs), qkv and inter2 (fused projections' outputs), vocab; a
        mixture's experts per block and each expert's MLP width (moe)."""
        h, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        head = int(config.get("head_dim") or h // heads)
        q, kv = heads * head, int(config.get("num_key_value_heads") or heads) * head
        inter = int(config["intermediate_size"])
        return {"hidden": h, "inter": inter, "head": head, "q": q, "kv": kv, "qkv": q + 2 * kv,
                "inter2": 2 * inter, "vocab": int(config["vocab_size"]),
                "moe": int(config.get("moe_intermediate_size") or inter),
                # (checkpoints say num_experts; transformers 5 writes num_local_experts)
                "experts": int(config.get("num_experts") or config.get("num_local_experts") or 0)}

    def block_shapes(self, config: dict) -> dict[str, tuple[int, ...]]:
        """Each block module's weight shape, PyTorch's (out, in) order (norms: (size,)); an
        expert kind ("mlp.experts.*.gate_proj") as the GGUF stack of all experts (experts, out, in)."""
        n = self.sizes(config)
        out: dict[str, tuple[int, ...]] = {m: (n[o], n[i]) for m, (o, i) in zip(self.linears, self.dims)}
        if self.experts:
            out |= {f"{self.experts}.*.{m}": (n["experts"], n[o], n[i])
                    for m, (o, i) in zip(self.expert_linears, self.expert_dims)}
            out[self.router] = (n["experts"], n["hidden"])
        return out | {m: (n[d],) for m, d in zip(self.norms, self.norm_dims or ("hidden",) * len(self.norms))}

    def check_config(self, config: dict, where: str = "") -> None:
        """Refuse in one line a config this family's entry does not describe: a mixture whose
        blocks are not all sparse (``mlp_only_layers``, ``decoder_sparse_step``)."""
        dense = config.get("mlp_only_layers") or int(config.get("decoder_sparse_step") or 1) != 1
        if self.experts and dense:
            raise ConfigError(f"{where}{': ' if where else ''}{self.hf_class} with dense MLP blocks among "
                              "the sparse ones (mlp_only_layers, decoder_sparse_step) is not supported yet")

    def generic(self, module: str) -> str:
        """A block-relative module name with its expert number as ``*`` ("mlp.experts.5.up_proj" →
        "mlp.experts.*.up_proj"); other names unchanged."""
        if self.experts and module.startswith(self.experts + "."):
            return re.sub(r"^(" + re.escape(self.experts) + r")\.\d+\.", r"\1.*.", module)
        return module

    def stack(self, name: str) -> str:
        """A Hugging Face module name with its expert number as ``*`` — the GGUF stack it belongs
        to, which holds one type ("model.layers.2.mlp.experts.5.up_proj" →
        "model.layers.2.mlp.experts.*.up_proj"); any other name unchanged."""
        m = re.fullmatch(re.escape(self.blocks) + r"\.(\d+)\.(.+)", name)
        return f"{self.blocks}.{m.group(1)}.{self.generic(m.group(2))}" if m else name

    def expert_index(self, name: str) -> int | None:
        """The expert number of a Hugging Face module or parameter name inside a block's experts
        (None outside them)."""
        if not self.experts:
            return None
        m = re.fullmatch(re.escape(self.blocks) + r"\.\d+\." + re.escape(self.experts) + r"\.(\d+)\..+", name)
        return int(m.group(1)) if m else None

    @property
    def gguf_constant(self) -> object:
        """The ``gguf`` package's ``MODEL_ARCH`` member of this family."""
        from gguf.constants import MODEL_ARCH, MODEL_ARCH_NAMES

        return next(a for a, n in MODEL_ARCH_NAMES.items() if n == self.gguf_arch and a in MODEL_ARCH)

    def hf_classes(self) -> tuple[type, type]:
        """transformers' (model class, config class) of this family (imports transformers)."""
        import transformers

        return getattr(transformers, self.hf_class), getattr(transformers, self.hf_config)

    def kinds(self) -> dict[str, str]:
        """Each block module (linears and norms, Hugging Face names relative to the block) →
        its GGUF tensor kind ("self_attn.q_proj" → "attn_q"), from gguf-py's tensor mapping."""
        return _kinds(self)

    def global_names(self) -> dict[str, str]:
        """GGUF name → Hugging Face parameter of the tensors outside the blocks."""
        return _globals(self)

    def gguf_name(self, param: str) -> str | None:
        """The GGUF tensor of a Hugging Face parameter ("model.layers.3.mlp.up_proj.weight" →
        "blk.3.ffn_up.weight"); None for what the GGUF file does not hold."""
        back = _inverse(self)[0]
        if param in back:
            return back[param]
        m = re.fullmatch(re.escape(self.blocks) + r"\.(\d+)\.(.+)\.(weight|bias)", param)
        kind = self.kinds().get(self.generic(m.group(2))) if m else None
        return f"blk.{m.group(1)}.{kind}.{m.group(3)}" if kind else None

    def hf_name(self, name: str) -> tuple[str | None, str | None]:
        """The Hugging Face parameter of a GGUF tensor and its kind ("blk.3.ffn_up.weight" →
        ("model.layers.3.mlp.up_proj.weight", "ffn_up")); (None, None) for one it skips. A
        stack of experts names them with ``*`` for the expert number
        ("blk.3.ffn_up_exps.weight" → "model.layers.3.mlp.experts.*.up_proj.weight")."""
        glob = self.global_names()
        if name in glob:
            return glob[name], None
        m = re.fullmatch(r"blk\.(\d+)\.([a-z_0-9]+)\.(weight|bias)", name)
        module = _inverse(self)[1].get(m.group(2)) if m else None
        if module is None:
            return None, None
        return f"{self.blocks}.{m.group(1)}.{module}.{m.group(3)}", m.group(2)

    def role(self, module: str) -> str:
        """The role of a Hugging Face module: attention, mlp, norm, router, embedding or head."""
        if module == self.embedding:
            return "embedding"
        if module == self.head:
            return "head"
        rel = module.split(".", 3)[-1] if module.startswith(self.blocks + ".") else ""
        kind = self.kinds().get(self.generic(rel), "")
        if kind.endswith("norm") or module == self.final_norm:
            return "norm"
        if self.router and rel == self.router:
            return "router"
        return "attention" if kind.startswith("attn") else "mlp" if kind.startswith("ffn") else "other"

    def block_linears(self, n_blocks: int) -> list[str]:
        """Every block's Linear modules, in order (Hugging Face names)."""
        return [f"{self.blocks}.{i}.{s}" for i in range(n_blocks) for s in self.linears]

    def rope_heads(self, config: dict) -> dict[str, int]:
        """GGUF kind → head count for the kinds whose rows llama.cpp permutes."""
        return {kind: int(config.get(key) or config[self.rope_rows[0][1]]) for kind, key in self.rope_rows}


@functools.cache
def _kinds(a: Architecture) -> dict[str, str]:
    from gguf.tensor_mapping import get_tensor_name_map

    tmap = get_tensor_name_map(a.gguf_constant, 1)
    out = {}
    for module in (*a.linears, *a.norms):
        name = tmap.get_name(f"{a.blocks}.0.{module}.weight", try_suffixes=(".weight",))
        if name is None:
            raise ConfigError(f"{a.name}: gguf's tensor map has no name for {module}")
        out[module] = name.split(".")[2]
    if a.experts:  # gguf's map names the stack of every expert's layer ("experts.gate_proj")
        for module in (*(f"{a.experts}.*.{m}" for m in a.expert_linears), a.router):
            merged = f"{a.blocks}.0.{module.replace('.*.', '.')}.weight"
            name = tmap.get_name(merged, try_suffixes=(".weight",))
            if name is None:
                raise ConfigError(f"{a.name}: gguf's tensor map has no name for {module}")
            out[module] = name.split(".")[2]
    return out


@functools.cache
def _globals(a: Architecture) -> dict[str, str]:
    from gguf.tensor_mapping import get_tensor_name_map

    tmap = get_tensor_name_map(a.gguf_constant, 1)
    out = {}
    for module in (a.embedding, a.final_norm, a.head):
        if module:
            name = tmap.get_name(f"{module}.weight", try_suffixes=(".weight",))
            if name is None and module == a.head and a.gemma:
                continue  # llama.cpp's gemma2 ties its head always (an untied one is refused)
            if name is None:
                raise ConfigError(f"{a.name}: gguf's tensor map has no name for {module}")
            out[name] = f"{module}.weight"
    return out


@functools.cache
def _inverse(a: Architecture) -> tuple[dict[str, str], dict[str, str]]:
    """(Hugging Face parameter → GGUF name outside the blocks, GGUF kind → block module)."""
    return {v: k for k, v in _globals(a).items()}, {k: m for m, k in _kinds(a).items()}


LLAMA = Architecture(
    name="llama", gguf_arch="llama", hf_class="LlamaForCausalLM", hf_config="LlamaConfig", model_type="llama",
    blocks="model.layers",
    linears=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    shared_inputs=(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                   ("mlp.gate_proj", "mlp.up_proj")),
    norms=("input_layernorm", "post_attention_layernorm"),
    embedding="model.embed_tokens", final_norm="model.norm", head="lm_head",
    rope_rows=(("attn_q", "num_attention_heads"), ("attn_k", "num_key_value_heads")),
    dims=(("q", "hidden"), ("kv", "hidden"), ("kv", "hidden"), ("hidden", "q"), ("inter", "hidden"),
          ("inter", "hidden"), ("hidden", "inter")),
    folds=(("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
           ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
           ("self_attn.v_proj", ("self_attn.o_proj",)), ("mlp.up_proj", ("mlp.down_proj",))))

#: Mistral: Llama's blocks (its sliding window is transformers' business); llama.cpp's converter
#: writes it as a "llama" GGUF, so a GGUF file reads back as Llama
MISTRAL = replace(LLAMA, name="mistral", hf_class="MistralForCausalLM", hf_config="MistralConfig",
                  model_type="mistral")

#: Qwen2: Llama's blocks with biases on q, k and v (AWQ's v → o fold scales v's bias too), and
#: rotary rows in the NeoX order, which llama.cpp keeps as they are
QWEN2 = replace(LLAMA, name="qwen2", gguf_arch="qwen2", hf_class="Qwen2ForCausalLM", hf_config="Qwen2Config",
                model_type="qwen2", rope_rows=())

#: Qwen3: Qwen2 without the biases, with an RMS norm on each head of q and k (``head_dim`` may
#: differ from hidden / heads: q's rows are heads × head_dim)
QWEN3 = replace(QWEN2, name="qwen3", gguf_arch="qwen3", hf_class="Qwen3ForCausalLM", hf_config="Qwen3Config",
                model_type="qwen3",
                norms=("input_layernorm", "post_attention_layernorm", "self_attn.q_norm", "self_attn.k_norm"),
                norm_dims=("hidden", "hidden", "head", "head"))

#: Phi-3: q, k, v fused into one projection, gate and up into another (llama.cpp keeps both
#: fused: attn_qkv, ffn_up); AWQ folds into the norms only (v and up are parts of fused rows)
PHI3 = Architecture(
    name="phi3", gguf_arch="phi3", hf_class="Phi3ForCausalLM", hf_config="Phi3Config", model_type="phi3",
    blocks="model.layers",
    linears=("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"),
    shared_inputs=(), norms=("input_layernorm", "post_attention_layernorm"),
    embedding="model.embed_tokens", final_norm="model.norm", head="lm_head",
    dims=(("qkv", "hidden"), ("hidden", "q"), ("inter2", "hidden"), ("hidden", "inter")),
    folds=(("input_layernorm", ("self_attn.qkv_proj",)), ("post_attention_layernorm", ("mlp.gate_up_proj",))))

#: Gemma 2: Llama's linears with heads of ``head_dim``, norms around both halves of the block
#: (pre and post attention, pre and post MLP), GeGLU, soft-capped logits and local/global layers —
#: transformers' business. Its RMS norms scale by ``1 + weight``: AWQ cannot divide them, so
#: only v → o and up → down fold (q/k/v and gate/up keep explicit input scales). Its embedding
#: multiplies its rows by √hidden itself: it stays float in a quanta folder (llama.cpp scales
#: it in its graph: GGUF quantizes it). In GGUF its norms are stored as 1 + weight, with the
#: soft-capping, sliding window and (Gemma 3) local rotary base as keys
#: (:mod:`quanta.model.formats.gguf_hf`).
GEMMA2 = replace(LLAMA, name="gemma2", gguf_arch="gemma2", hf_class="Gemma2ForCausalLM",
                 hf_config="Gemma2Config", model_type="gemma2", rope_rows=(), norm_offset=1.0,
                 scaled_embedding=True,
                 norms=("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                        "post_feedforward_layernorm"),
                 folds=(("self_attn.v_proj", ("self_attn.o_proj",)), ("mlp.up_proj", ("mlp.down_proj",))))

#: Gemma 3 (text): Gemma 2's block with q/k head norms
GEMMA3 = replace(GEMMA2, name="gemma3", gguf_arch="gemma3", hf_class="Gemma3ForCausalLM",
                 hf_config="Gemma3TextConfig", model_type="gemma3_text",
                 norms=(*GEMMA2.norms, "self_attn.q_norm", "self_attn.k_norm"),
                 norm_dims=("hidden", "hidden", "hidden", "hidden", "head", "head"))

#: Qwen3-MoE: Qwen3's attention, and in place of the MLP a router (``mlp.gate``, float) choosing
#: ``num_experts_per_tok`` of ``num_experts`` MLPs per token, weighted by their softmax
#: probabilities (renormalised over the chosen ones with ``norm_topk_prob``). transformers fuses
#: the experts into 3-D parameters; quanta splits them back into one Linear per expert and
#: matrix, as the checkpoints store them (:mod:`quanta.model.sources.experts`). Blocks listed in
#: ``mlp_only_layers`` (a dense MLP instead) are not supported yet. AWQ folds into the norm before
#: attention and v → o only.
QWEN3_MOE = replace(QWEN3, name="qwen3_moe", gguf_arch="qwen3moe", hf_class="Qwen3MoeForCausalLM",
                    hf_config="Qwen3MoeConfig", model_type="qwen3_moe",
                    linears=LLAMA.linears[:4], dims=LLAMA.dims[:4],
                    shared_inputs=(LLAMA.shared_inputs[0],), folds=LLAMA.folds[:1] + LLAMA.folds[2:3],
                    experts="mlp.experts", expert_linears=("gate_proj", "up_proj", "down_proj"),
                    expert_dims=(("moe", "hidden"), ("moe", "hidden"), ("hidden", "moe")), router="mlp.gate")

BERT = Architecture(
    name="bert", gguf_arch="bert", hf_class="BertModel", hf_config="BertConfig", model_type="bert",
    blocks="encoder.layer",
    linears=("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "intermediate.dense", "output.dense"),
    shared_inputs=(("attention.self.query", "attention.self.key", "attention.self.value"),),
    norms=("attention.output.LayerNorm", "output.LayerNorm"),
    embedding="embeddings.word_embeddings", causal=False,
    dims=(("hidden", "hidden"), ("hidden", "hidden"), ("hidden", "hidden"), ("hidden", "hidden"),
          ("inter", "hidden"), ("hidden", "inter")),
    folds=(("attention.self.value", ("attention.output.dense",)),))

#: the families quanta reads and writes, by name
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a for a in (LLAMA, MISTRAL, QWEN2, QWEN3, PHI3, GEMMA2, GEMMA3, QWEN3_MOE, BERT)}


def stacked(name: str) -> str:
    """:meth:`Architecture.stack` of whichever family's experts ``name`` lies in (reports that
    do not know the family: a plan's map)."""
    for a in ARCHITECTURES.values():
        if a.expert_index(name) is not None:
            return a.stack(name)
    return name


def _causal() -> list[Architecture]:
    return [a for a in ARCHITECTURES.values() if a.causal]


def for_gguf(arch: str, where: str = "") -> Architecture:
    """The family of a GGUF file's ``general.architecture`` (a causal LM whose GGUF files quanta
    reads and writes)."""
    known = [a for a in _causal() if a.gguf_io]
    found = next((a for a in known if a.gguf_arch == arch), None)
    if found is None:
        raise ConfigError(f"{where}{': ' if where else ''}architecture {arch!r} is not supported "
                          f"(supported: {', '.join(dict.fromkeys(a.gguf_arch for a in known))})")
    return found


def for_hf(class_name: str | None, where: str = "", *, causal: bool = False) -> Architecture:
    """The family of a Hugging Face ``architectures`` class name (``causal``: a causal LM)."""
    known = [a for a in ARCHITECTURES.values() if a.causal or not causal]
    found = next((a for a in known if a.hf_class == class_name), None)
    if found is None:
        raise ConfigError(f"{where}{': ' if where else ''}architecture {class_name!r} is not supported "
                          f"(supported: {', '.join(a.hf_class for a in known)})")
    return found


__all__ = ["ARCHITECTURES", "BERT", "GEMMA2", "GEMMA3", "LLAMA", "MISTRAL", "PHI3", "QWEN2", "QWEN3",
           "QWEN3_MOE",
           "Architecture", "for_gguf", "for_hf", "stacked"]
