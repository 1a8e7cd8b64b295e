"""The recipe of ``quanta model quantize``, shared by the contract (:mod:`quanta.model.medium`)
and the tour (:mod:`quanta.model.eval.tour`): calibration windows, the mixed-precision plan under a
target or the default's shared-out bytes, and how the token embedding is quantized and rounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quanta.progress import Phases


def mixed_plan(loaded: Any, windows: Any, method: str, format: str, include: tuple[str, ...],
               exclude: tuple[str, ...], phases: Phases | None = None, *, budget: int | None = None,
               target_bpw: float | None = None, default_bits: int | None = None,
               embedding: bool = True, work: Any = None, lattice: bool = False) -> Any:
    """Measure every tensor's sensitivity and choose its format within ``budget`` bytes for the
    units (the plan's :attr:`~quanta.model.quantize.plan.QuantPlan.unit_budget`), or ``target_bpw`` bits
    per unit weight — with ``default_bits``, among :func:`~quanta.model.formats.weight.default_formats`.
    ``embedding``: the token embedding is one of the units. ``work``: a resumable run's work folder
    (the measured table is kept there, and taken from there when an earlier run measured it).
    ``lattice``: whether a GGUF budget's candidates include the lattice types (the plan's
    decision, :func:`~quanta.model.quantize.plan.lattice_offered`)."""
    phases = phases or Phases(None)
    from quanta.model.formats import weight as formats
    from quanta.model.quantize import mixed
    from quanta.model.quantize.apply import find_targets
    from quanta.model.quantize.quantizers import QUANTIZERS

    names = [n for n, _ in find_targets(loaded.model, include, exclude)]
    if not names:  # refused before the sensitivity pass, as quantize_model would after it
        from quanta.errors import ConfigError

        raise ConfigError(f"no Linear layer matches --include {','.join(include)} "
                          f"(minus --exclude {','.join(exclude) or 'nothing'})")
    from quanta.model.arch import for_hf

    family = for_hf(type(loaded.model).__name__)
    shapes = mixed.unit_shapes(loaded.model, names, embedding=embedding)
    levels, compiled = QUANTIZERS[method].takes_levels, family.compiled
    if budget is None:
        budget = int(float(target_bpw) * sum(r * c for r, c in shapes.values()) / 8)
    if format == "gguf":
        cands: mixed.Candidates = {n: formats.gguf_formats(levels, cols, lattice=lattice)
                                   for n, (_, cols) in shapes.items()}
    else:
        # a method whose zero points are fractional (HQQ) stores every grid asymmetric: a
        # symmetric format's bytes (no zero points) would not be what it writes
        asym = QUANTIZERS[method].fractional_zeros

        def folder(fmts: list) -> list:
            return [f for f in fmts if not (asym and f.sym)]

        cands = {n: folder(formats.quanta_formats(cols, levels, compiled) if default_bits is None else
                           formats.default_formats(default_bits, cols, levels, compiled))
                 for n, (_, cols) in shapes.items()}
        cands[mixed.EMBEDDING] = folder(formats.embedding_formats(compiled))
    table = saved_table(work, cands, list(shapes))
    if table is None:
        table = mixed.measure_table(loaded.model, windows[:SENSITIVITY_WINDOWS], names, cands,
                                    embedding=embedding, progress=phases.next())
        if work is not None:
            work.save_table(table)
    return mixed.choose(table, shapes, cands, budget, together={n: family.stack(n) for n in names})


def saved_table(work: Any, cands: dict, units: list[str]) -> dict | None:
    """The loss table a resumed run's work folder kept, if it prices exactly these ``units``, each
    in as many formats as ``cands`` offers it now (a folder left by an earlier quanta, which
    offered other grids, is measured again); None otherwise."""
    table = work.table() if work is not None else None
    if table is None or set(table) != set(units) or any(len(table[n]) != len(cands[n]) for n in units):
        return None
    return table


#: the bits per unit weight below which a GGUF budget's candidates include the lattice types
#: (IQ2_XXS … IQ3_S, 2.06–3.44 bits): pricing one costs a grid search per weight (~0.35 µs on
#: 2 cores, 10× a K-quant's), paid on every unit whose rows fit — not where they would not be chosen
LATTICE_BPW = 4.0
#: calibration windows the sensitivity pass uses (it back-propagates: 4× a forward pass)
SENSITIVITY_WINDOWS = 16


def embedding_label(spec: dict | None) -> str:
    """The token embedding's format and rounding for the report: ``8-bit per row (mse)``."""
    if spec is None:
        return "float"
    rows = spec["group_size"] == spec["in"]
    grid = f"{spec['bits']}-bit " + ("per row" if rows else f"g{spec['group_size']}")
    return f"{grid} ({spec['method']})" if spec.get("method") else grid


def embedding_quantizer(plan: Any, bits: int, embedding_bits: int | None, head: bool,
                        method: str = "mse") -> Any:
    """The token embedding's quantizer for a quanta folder (None: it stays float); ``method``
    rounds it (:func:`embedding_method`)."""
    from quanta.model.quantize.mixed import EMBEDDING
    from quanta.model.quantize.quantizers import make_quantizer, quantizer_for

    if plan is not None:
        return quantizer_for(method, plan.choice[EMBEDDING]) if EMBEDDING in plan.choice else None
    from quanta.core._checks import check_bits

    eb = 8 if embedding_bits is None else int(embedding_bits)
    if eb == 0:
        return None
    check_bits(eb, 2, 8, "embedding bits")
    if eb == 8:  # one symmetric scale per row: a tied head runs PyTorch's int8 kernel
        return make_quantizer(method, bits=8, group_size=0, sym=True)
    return make_quantizer(method, bits=eb, group_size=32)


#: how a token embedding rounds when nothing calibrates it (a lookup has no input statistics)
EMBEDDING_METHOD = "mse"
#: the rounding of a tied embedding under each calibrated method, with the output head's input
#: statistics (:func:`quanta.model.quantize.apply.head_stats`); AWQ's input scales have no layer to fold into
TIED_EMBEDDING_METHODS = {"gptq": "gptq", "awq+gptq": "gptq", "imatrix": "imatrix", "awq": "imatrix"}


def embedding_method(method: str, model: Any, windows: Any) -> str:
    """How the token embedding rounds: a tied embedding is the output head too, and with
    calibration windows it rounds as the layers' method does on the head's inputs (GPTQ's error
    feedback or the importance-weighted search); otherwise by the clipping search alone."""
    from quanta.model.runtime.qembed import ties_head

    if windows is None or not ties_head(model):
        return EMBEDDING_METHOD
    return TIED_EMBEDDING_METHODS.get(method, EMBEDDING_METHOD)


def mixed_json(plan: Any) -> dict | None:
    """The plan as the report and the config carry it."""
    from quanta.model.quantize.mixed import describe

    return None if plan is None else describe(plan)


def calibration_for(loaded: Any, quantizer: Any, calib: str | Path | None, samples: int | None,
                    length: int | None, seed: int, *, force: bool = False) -> Any:
    """Calibration windows for a quantizer that needs them, or for any with ``force``
    (None otherwise)."""
    from quanta.errors import InputError
    from quanta.model.options import DEFAULT_LENGTH, DEFAULT_SAMPLES
    from quanta.model.quantize.calibrate import calibration_windows, read_text

    if not (quantizer.needs_calibration or force):
        return None
    context = getattr(getattr(loaded.model, "config", None), "max_position_embeddings", None)
    if context and length and length > context:
        raise InputError(f"--calib-len {length} exceeds the model's context of {context} tokens")
    if loaded.tokenizer is None:
        raise InputError(f"{loaded.source}: no tokenizer to cut calibration windows with "
                         "(--method rtn needs no calibration)")
    text = None if calib is None else read_text(calib)
    return calibration_windows(loaded.tokenizer, text, samples=samples or DEFAULT_SAMPLES,
                               length=length or DEFAULT_LENGTH, bos_id=loaded.bos_id, seed=seed)
