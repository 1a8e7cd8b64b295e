"""What a plan will cost: peak resident memory and wall time, predicted from the layout alone.

Estimates, printed as such, from counts of the work each phase does and two speeds of this
machine measured when the plan is made (:func:`machine_speed`: a float32 matrix product of the
model's hidden size and a float64 one, ~0.1 s), with efficiencies fitted on this project's runs
(x86-64 Xeon, 2 cores, 2026-12-07: the SmolLM2-135M and Llama-3.1-8B shapes, the probe at each
model's width; see docs/BENCHMARKS.md, "Models of 1–8 B parameters, third part").

Memory. A Hugging Face folder is read block by block (:mod:`quanta.model.sources.stream`): the
peak is the interpreter with torch and transformers (:data:`BASE_BYTES`) plus the largest of

* the sensitivity pass: every block's inputs over its windows (float32), one float block and
  its layers' second moments (float32), one window's logits (twice) and a slice of the head;
* the blocks: one float block and its kernel form, the calibration activations (twice), the
  block's second moments in float64 (GPTQ permutes and factors the last layer's sums in place)
  and GPTQ's buffers for its largest layer (the weight and codes in float64); without a Hessian,
  :data:`BLOCK_COPIES` float blocks (the finished block's layers held in float32 while the
  windows run through it, the rounding's temporaries) — the layers finished are parked in a
  spill file (:mod:`quanta.model.formats.spill`), but for a compressed-tensors folder, which
  holds them;
* the embedding: the embedding's codes and a tied head's kernel form, one row slice and
  GPTQ's float64 buffers for :data:`ROW_CHUNK` of its rows — or, without a Hessian, the codes
  (:data:`EMB_CODE_BYTES`) and :data:`SLICE_COPIES` float32 slices; for a GGUF file, its blocks
  packed beside the codes;
* the writing: the tensors left float, read in float32 and converted to their stored dtype —
  a quanta folder's a row slice at a time, a GGUF or compressed-tensors output's whole; a GGUF
  file's parked tensors read back one at a time (the largest: the embedding's blocks).

A GGUF source is dequantized whole (:data:`BYTES_PER_PARAM` per parameter, as measured).

Time: start-up; reading the source; for calibrated methods two passes of the calibration
windows per block (2 flops per weight per token) and the Hessians' sums (2·in² per token per
distinct input); GPTQ per layer (its inverse factor, ~2·in³ in float64, the lazy updates,
2·out·in², and the grid's refit, two products as large); for the sensitivity pass four passes
of its windows, the head's logits and their gradient, and the loss table (each candidate's
error through ``H``: 2·out·in² per candidate); the rounding and clipping search per weight.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

#: float32 bytes of the row slices a streamed embedding or head is read in, by default
SLICE_BYTES = 128 * 2**20
#: rows a weight quantizer takes at a time (:data:`quanta.model.quantize.quantizers.ROW_CHUNK`)
ROW_CHUNK = 8192
#: resident bytes of a process that imported torch and transformers and read a tokenizer
BASE_BYTES = 480e6
#: float32 copies of one block a calibrated method without a Hessian keeps at its peak (fitted on
#: the Llama-3.2-1B shape's ``--type Q4_K_M --method imatrix``)
BLOCK_COPIES = 3.0
#: bytes per embedding weight of its quantized form before it is packed: the code (a byte), a
#: float32 scale and zero point per group of 16 (the K-quants' finest groups)
EMB_CODE_BYTES = 1.5
#: float32 copies of an embedding slice alive while it is quantized without a Hessian (the slice,
#: the search's and the rounding's temporaries; fitted on the SmolLM2-135M shape's Q8_0 embedding)
SLICE_COPIES = 3
#: a GGML packer's temporaries: chunks of 2 M weights (:data:`~quanta.model.formats.gguf_export.
#: PACK_WEIGHTS`) at about 24 bytes a weight
PACK_BYTES = 50e6
#: resident bytes per source parameter of a source loaded whole (a GGUF file dequantized)
BYTES_PER_PARAM = 10.1
#: start-up: interpreter, imports, reading the tokenizer
START_S = 3.0
#: seconds per source byte read and converted (safetensors bf16 → float32, a GGUF dequantized)
READ_S_PER_BYTE = 2.5e-9
#: seconds per quantized weight to round, by method (calibrated methods add their passes)
ROUND_S_PER_WEIGHT = {"rtn": 50e-9, "mse": 30e-9, "nf4": 60e-9, "hqq": 400e-9, "imatrix": 30e-9,
                      "gptq": 40e-9, "awq": 300e-9, "awq+gptq": 300e-9}
#: seconds per quantized weight to put a GGML type's scales on its grid, refine its factors and
#: pack its blocks (a GGUF output)
EXPORT_S_PER_WEIGHT = 42e-9
#: windows of the sensitivity pass, its passes (forward, again with gradients, backward ×2) and
#: the candidates each unit is priced in
SENSITIVITY_WINDOWS, SENSITIVITY_PASSES, CANDIDATES = 16, 4, 7
#: seconds per layer the sensitivity pass spends beyond its flops (pricing each unit's formats,
#: its per-layer bookkeeping; fitted on the SmolLM2-135M shape, where it is a third of the run)
SENSITIVITY_LAYER_S = 0.15
#: the share of the measured float32 speed each kind of work reaches (fitted)
EFFICIENCY = {"forward": 0.75, "hessian": 0.6, "table": 0.75, "head": 0.35}
#: the share of the measured float64 speed GPTQ's factor and updates reach (fitted)
GPTQ_EFFICIENCY = 0.8
#: products of GPTQ's size (2·out·in² flops) that refitting a layer's grid to its codes adds
#: (:func:`quanta.core.hessian.refit_scales`; counted, not fitted: taken at GPTQ's efficiency)
REFIT_PRODUCTS = 2
#: seconds per weight of a lattice type (IQ2_XXS … IQ3_S): the search of its points, in the
#: final rounding (GPTQ's runs of columns add a step per run) and for each candidate priced
#: (measured on SmolLM2's down projections, 2 cores)
LATTICE_S_PER_WEIGHT = 0.5e-6
LATTICE_PRICE_S_PER_WEIGHT = 0.35e-6
#: flops per second assumed when no measurement is made (this machine class)
DEFAULT_SPEED = (2.0e11, 0.9e11)


@dataclass(frozen=True)
class Cost:
    """Predicted peak resident memory (bytes) and wall time (seconds) of a command."""

    peak_bytes: int
    seconds: float


@functools.cache
def machine_speed(width: int = 1024) -> tuple[float, float]:
    """Flops per second of this machine on a float32 and a float64 matrix product of the
    model's width (256 × ``width`` by ``width`` × ``width``, ``width`` held to 512…4096; numpy,
    on the threads numpy's BLAS uses): the best of the products made in ~40 ms each, after
    ~30 ms of products that warm the threads up (without them the first probe of a process read
    250–270 GFLOP/s where the next read 360–390). A narrow
    model's products run further from the machine's peak than a wide one's, and the probe sees
    it."""
    import time

    import numpy as np

    n = min(max(int(width), 512), 4096)
    out = []
    for dt in (np.float32, np.float64):
        a, b = np.ones((256, n), dt), np.ones((n, n), dt)
        t_warm = time.perf_counter() + 0.03
        a @ b  # the first products pay the threads' start and the cores' clock ramp
        while time.perf_counter() < t_warm:
            a @ b
        best, t_end = math.inf, time.perf_counter() + 0.04
        while True:
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() >= t_end:
                break
        out.append(2.0 * 256 * n * n / best)
    return out[0], out[1]


@dataclass(frozen=True)
class Shapes:
    """What the cost depends on, from the layout: blocks, their Linear shapes (out, in) and the
    distinct input widths (layers fed one tensor share a Hessian), the hidden size, the vocabulary,
    the parameters, whether the head is tied, whether the source is streamed."""

    blocks: int
    linears: tuple[tuple[int, int], ...]  # one block's
    inputs: tuple[int, ...]  # one block's distinct input widths
    hidden: int
    vocab: int
    params: int
    source_bytes: int
    tied: bool
    streamed: bool
    #: of one block's Linear weights, those a token's forward pass multiplies (a mixture's router
    #: picks k of E experts; 0: all of them). The statistics pass runs every expert on every
    #: token (:func:`~quanta.model.sources.experts.every_token`), the propagation the routed ones.
    routed: int = 0

    @property
    def block_params(self) -> int:
        return sum(o * i for o, i in self.linears)

    @property
    def routed_params(self) -> int:
        return self.routed or self.block_params


def shapes_of(layout: Any) -> Shapes:
    """The :class:`Shapes` of a :class:`~quanta.model.quantize.plan.Layout`."""
    import re

    linears = [s for s in layout.tensors if s.role in ("attention", "mlp") and len(s.shape) == 2]
    # block 0's (the first number in a name is its block: "experts.0" of block 1 is not block 0's)
    first = [s for s in linears if (m := re.search(r"\.(\d+)\.", s.name)) and m.group(1) == "0"] or linears
    blocks = max(1, len({m.group(1) for s in linears if (m := re.search(r"\.(\d+)\.", s.name))}))
    emb = next((s.shape for s in layout.tensors if s.role == "embedding"), (0, 0))
    # layers of one block fed one tensor: the same input width and the same role, but for the
    # projections reading another layer's output (o_proj, down_proj: their own input)
    shared: dict[tuple[str, int], int] = {}
    alone = []
    for s in first:
        if re.search(r"(o_proj|down_proj|dense|out_proj)$", s.name):
            alone.append(s.shape[1])
        else:
            shared[(s.role, s.shape[1])] = s.shape[1]
    experts = [s for s in first if layout.family.expert_index(s.name) is not None]
    share = getattr(layout, "experts_used", 0) / max(getattr(layout, "experts", 0), 1)
    routed = sum(math.prod(s.shape) for s in first) - round((1 - share) * sum(math.prod(s.shape)
                                                                             for s in experts))
    return Shapes(blocks, tuple((s.shape[0], s.shape[1]) for s in first), (*shared.values(), *alone),
                  emb[1], emb[0], sum(math.prod(s.shape) for s in layout.tensors), layout.source_bytes,
                  layout.tied, layout.kind == "hf-causal-lm", routed=routed if experts and share else 0)


def predict(sh: Shapes, quantized_bytes: int, quantized: int, method: str, *, calibrated: bool,
            sensitivity: bool, windows: int, tokens: int, gguf: bool = False, hessian: bool = True,
            speed: tuple[float, float] | None = None, floats: int = 0, parked: bool = True,
            slice_bytes: int = SLICE_BYTES, emb_bytes: int = 0, sliced: bool = False,
            lattice: int = 0, lattice_priced: int = 0) -> Cost:
    """The cost of quantizing a model of shapes ``sh`` into ``quantized_bytes`` of quantized
    tensors (``quantized`` weights rounded by ``method``; ``gguf``: packed into GGML blocks);
    ``calibrated``: the method reads ``windows`` × ``tokens`` calibration tokens (``hessian``:
    and GPTQ's Hessians); ``sensitivity``: the formats are chosen by the measured sensitivity;
    ``floats``: the parameters written float; ``parked``: finished layers leave memory;
    ``slice_bytes``: the embedding's and head's row slices (float32); ``emb_bytes``: the quantized
    embedding's bytes; ``sliced``: the float tensors are written a row slice at a time (a quanta
    folder's writer; a GGUF or compressed-tensors writer reads them whole first); ``lattice``:
    the weights rounded onto a lattice type; ``lattice_priced``: the weights the sensitivity pass
    prices in lattice types (each candidate counted)."""
    f32, f64 = speed or DEFAULT_SPEED
    block_f32 = 4 * sh.block_params
    h2 = sum(i * i for i in sh.inputs)
    big_out, big_in = max(sh.linears, key=lambda s: s[0] * s[1] + s[1] ** 2) if sh.linears else (0, 0)
    # memory
    if sh.streamed:
        kernels = quantized_bytes / max(sh.blocks, 1)  # one block's kernel form before it is compacted
        held = 0 if parked else quantized_bytes
        acts = 2 * 4 * windows * tokens * sh.hidden if calibrated else 0
        gptq = 3 * 8 * big_out * big_in if hessian and calibrated else 0
        # a calibrated method without a Hessian holds the float block, then the finished block's
        # layers in float32 while the windows run through it, and the rounding's temporaries
        copies = BLOCK_COPIES if calibrated and not hessian else 1
        blocks_phase = held + copies * block_f32 + kernels + acts + (8 if hessian else 0) * h2 + gptq
        sens_phase = 0.0
        if sensitivity:
            saved = 4 * sh.blocks * SENSITIVITY_WINDOWS * tokens * sh.hidden
            logits = 2 * 4 * tokens * sh.vocab
            table = 3 * 4 * big_out * big_in
            head_slice = min(slice_bytes, 4 * sh.vocab * sh.hidden)
            sens_phase = saved + block_f32 + 4 * h2 + logits + 3 * head_slice + table
        emb_rows = min(sh.vocab, slice_bytes // max(4 * sh.hidden, 1))
        emb = sh.vocab * sh.hidden
        if hessian and calibrated:  # GPTQ's float64 buffers for ROW_CHUNK rows of the slice at a time
            gptq_rows = min(emb_rows, ROW_CHUNK)
            emb_phase = held + 2 * emb + 4 * emb_rows * sh.hidden + 4 * 8 * gptq_rows * sh.hidden \
                + 8 * sh.hidden * sh.hidden
        else:  # the codes (a byte) with float32 scales and zero points of groups of 16, and the
            # slice read in float32 with the search's and the rounding's temporaries
            emb_phase = held + EMB_CODE_BYTES * emb + SLICE_COPIES * 4 * emb_rows * sh.hidden
        if gguf:  # the embedding's blocks packed beside its codes, in chunks, then parked
            emb_phase = max(emb_phase, held + EMB_CODE_BYTES * emb + emb_bytes + PACK_BYTES)
        # the writing: a GGUF file's tensors come back from the spill file one at a time (the
        # largest, the embedding's blocks), a folder's embedding is written from its codes; float
        # tensors are read whole in float32 and converted, or, for a quanta folder (``sliced``), a
        # row slice at a time as the writer asks for them
        float_bytes = 2 * min(4 * floats, slice_bytes) if sliced else 2 * 4 * floats
        write_phase = held + (max(emb_bytes, 4 * emb_rows * sh.hidden) if gguf else 2 * emb) + float_bytes
        peak = BASE_BYTES + max(blocks_phase, sens_phase, emb_phase, write_phase)
    else:
        peak = BASE_BYTES + BYTES_PER_PARAM * sh.params
        if calibrated:
            peak += 2 * 4 * windows * tokens * sh.hidden
        if sensitivity:
            peak += 4 * (sh.blocks * h2 + sh.vocab * sh.hidden)
    # time
    seconds = START_S + READ_S_PER_BYTE * sh.source_bytes * (3 if sensitivity else 1)
    seconds += ROUND_S_PER_WEIGHT.get(method, 150e-9) * quantized
    seconds += EXPORT_S_PER_WEIGHT * quantized if gguf else 0.0
    seconds += LATTICE_S_PER_WEIGHT * lattice
    seconds += LATTICE_PRICE_S_PER_WEIGHT * lattice_priced if sensitivity else 0.0
    n = sh.blocks
    if calibrated:
        t = windows * tokens
        # two passes: the statistics (a mixture's every expert) and the quantized block (the routed)
        seconds += n * 2 * (sh.block_params + sh.routed_params) * t / (f32 * EFFICIENCY["forward"])
        if hessian:
            seconds += n * 2 * t * h2 / (f32 * EFFICIENCY["hessian"])
            updates = 1 + REFIT_PRODUCTS  # the lazy updates, then the grid's refit to the codes
            gptq_flops = sum(2 * i ** 3 + updates * 2 * o * i * i for o, i in sh.linears)
            emb = (2 * sh.hidden ** 3 + updates * 2 * sh.vocab * sh.hidden ** 2) if sh.tied else 0
            seconds += (n * gptq_flops + emb) / (f64 * GPTQ_EFFICIENCY)
    if sensitivity:
        t = SENSITIVITY_WINDOWS * tokens
        seconds += n * SENSITIVITY_PASSES * 2 * sh.block_params * t / (f32 * EFFICIENCY["forward"])
        seconds += n * 2 * t * h2 / (f32 * EFFICIENCY["hessian"])
        seconds += 2 * 2 * t * sh.vocab * sh.hidden / (f32 * EFFICIENCY["head"])
        table = n * sum(2 * o * i * i for o, i in sh.linears)
        table += 2 * sh.vocab * sh.hidden ** 2 if sh.tied else 0
        seconds += CANDIDATES * table / (f32 * EFFICIENCY["table"])
        seconds += SENSITIVITY_LAYER_S * n * len(sh.linears)
    return Cost(int(peak), seconds)


def for_plan(layout: Any, entries: Any, method: str, *, calibrated: bool, sensitivity: bool,
             windows: int, tokens: int, gguf: bool = False, hessian: bool = True,
             speed: tuple[float, float] | None = None, parked: bool = True,
             slice_bytes: int = SLICE_BYTES, sliced: bool = False, lattice_offered: bool = False) -> Cost:
    """:func:`predict` for a plan's tensors (:mod:`quanta.model.quantize.plan`); ``lattice_offered``:
    the sensitivity pass prices every unit whose rows fit in each lattice type."""
    from quanta.model.formats.weight import BLOCK_TYPES, ggml_format
    from quanta.model.quantize.pricing import priced_rows

    kinds = {t.name: t for t in BLOCK_TYPES.values() if t.lattice}
    quantized = [e for e in entries if e.method is not None]
    lattice = sum(math.prod(e.shape) for e in quantized if e.format in kinds)

    def priced_in(t: Any, shape: tuple[int, ...]) -> int:  # the weights one lattice type is priced on
        rows, cols = math.prod(shape[:-1]), shape[-1]
        return priced_rows(ggml_format(t.name), rows, cols) * cols if t.fits(cols) else 0

    priced = sum(priced_in(t, e.shape) for e in quantized for t in kinds.values()) if lattice_offered else 0
    floats = sum(math.prod(e.shape) for e in entries if e.method is None)
    emb_bytes = sum(e.nbytes for e in quantized if e.role == "embedding")
    return predict(shapes_of(layout), sum(e.nbytes for e in quantized),
                   sum(math.prod(e.shape) for e in quantized), method, calibrated=calibrated,
                   sensitivity=sensitivity, windows=windows, tokens=tokens, gguf=gguf, hessian=hessian,
                   speed=speed, floats=floats, parked=parked, slice_bytes=slice_bytes, emb_bytes=emb_bytes,
                   sliced=sliced, lattice=lattice, lattice_priced=priced)


__all__ = ["SLICE_BYTES", "Cost", "Shapes", "for_plan", "machine_speed", "predict", "shapes_of"]
