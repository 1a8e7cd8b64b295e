"""The lattice types priced on a sample of a large unit's rows: what it costs and what it changes,
in one run.

    python bench/model_lattice_price.py [--caps 65536,262144] [--target-bpw 5.0]

The sensitivity pass prices each unit in each candidate format (``quanta.model.quantize.mixed``);
a lattice type's price is a grid search per weight (~0.35 µs on 2 cores), so a unit of more than
``pricing.LATTICE_PRICE_WEIGHTS`` weights (2^20) is priced on a sample of its rows
(``quanta.model.quantize.mixed.unit_losses``).

* **What it changes** (``smollm2-unbinned``, real weights, the sensitivity pass's 16 default
  calibration windows): SmolLM2's units are all under 2^20 weights, so its commands price them
  whole; here the cap is lowered (``--caps``) so its 30 ``ffn_down`` layers (576 rows of 1536) are
  sampled — 42 rows at 2^16, fewer than any unit of an 8 B model gets at 2^20 (74 rows of 14,336)
  —: each lattice type's sampled price against the whole one, layer by layer; and the allocator's
  choice under ``--target-bpw`` (every unit, every GGUF candidate) from the sampled table against
  the whole table's — units that change type, and the sampled choice's loss priced whole.
* **What it costs** (Llama 3.1 8B's largest units, seeded random weights: time only, never
  quality): pricing a 14,336 × 4,096 ``gate_proj`` and a 4,096 × 14,336 ``down_proj`` in the five
  lattice types, whole and sampled, and the whole 8 B model's lattice pricing from those rates.

Writes bench/out/model_lattice_price.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench._util import machine, write_json  # noqa: E402
from quanta.model.formats.weight import BLOCK_TYPES, ggml_format, gguf_formats  # noqa: E402
from quanta.model.quantize import mixed, pricing  # noqa: E402
from quanta.model.quantize.apply import find_targets  # noqa: E402
from quanta.model.quantize.calibrate import calibration_windows  # noqa: E402
from quanta.model.quantize.recipe import SENSITIVITY_WINDOWS  # noqa: E402
from quanta.model.sources import unbinned  # noqa: E402
from quanta.model.sources.load import load_model  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

LATTICE = [t.name for t in BLOCK_TYPES.values() if t.lattice]
#: Llama 3.1 8B's units: (rows, columns, how many)
SHAPES_8B = {"q_proj/o_proj": (4096, 4096, 64), "k_proj/v_proj": (1024, 4096, 64),
             "gate_proj/up_proj": (14336, 4096, 64), "down_proj": (4096, 14336, 32),
             "embedding, head": (128256, 4096, 2)}


def priced(model: nn.Module, sens: mixed.Sensitivity, names: list[str], cands: dict,
           cap: int | None) -> dict[str, np.ndarray]:
    """Each unit's loss row, with ``LATTICE_PRICE_WEIGHTS`` at ``cap`` (None: as committed)."""
    old = pricing.LATTICE_PRICE_WEIGHTS
    pricing.LATTICE_PRICE_WEIGHTS = cap or old
    try:
        return {n: mixed.unit_losses(model, sens, n, cands[n]) for n in names}
    finally:
        pricing.LATTICE_PRICE_WEIGHTS = old


def smollm2(caps: list[int], target_bpw: float) -> dict:
    ref = load_model(unbinned.ensure())
    model = ref.model
    wins = calibration_windows(ref.tokenizer)[:SENSITIVITY_WINDOWS]
    names = [n for n, _ in find_targets(model, ("*",), ())]
    t0 = time.perf_counter()
    sens = mixed.measure(model, wins, names)
    console.print(f"sensitivity pass over {len(names)} layers: {time.perf_counter() - t0:.0f} s")
    shapes = mixed.unit_shapes(model, names, embedding=True)
    cands = {n: gguf_formats(True, cols, lattice=True) for n, (_, cols) in shapes.items()}
    units = list(shapes)
    t0 = time.perf_counter()
    whole = priced(model, sens, units, cands, 1 << 40)
    whole_s = time.perf_counter() - t0
    budget = int(target_bpw * sum(r * c for r, c in shapes.values()) / 8)
    best = mixed.choose(whole, shapes, cands, budget)

    def loss_of(choice: dict) -> float:  # a choice's loss priced whole
        return sum(float(whole[n][[c.label for c in cands[n]].index(choice[n].label)]) for n in units)

    downs = [n for n in units if n.endswith("down_proj")]
    out: dict = {"whole_pricing_s": whole_s, "target_bpw": target_bpw, "caps": []}
    for cap in caps:
        t0 = time.perf_counter()
        taken = priced(model, sens, units, cands, cap)
        took = time.perf_counter() - t0
        per_type = {}
        for t in LATTICE:
            ratios = []
            for n in downs:
                j = [c.label for c in cands[n]].index(ggml_format(t).label)
                ratios.append(taken[n][j] / whole[n][j])
            r = np.asarray(ratios)
            per_type[t] = {"median_ratio": float(np.median(r)),
                           "worst_ratio": float(r[np.argmax(abs(r - 1))]),
                           "mean_abs_dev": float(np.mean(abs(r - 1)))}
        pick = mixed.choose(taken, shapes, cands, budget)
        pricing.LATTICE_PRICE_WEIGHTS, committed = cap, pricing.LATTICE_PRICE_WEIGHTS
        rows_taken = -(-576 // pricing.price_stride(ggml_format("IQ3_S"), 576, 1536))
        pricing.LATTICE_PRICE_WEIGHTS = committed
        changed = [n for n in units if pick.choice[n].label != best.choice[n].label]
        out["caps"].append({
            "cap": cap, "rows_taken": rows_taken,
            "pricing_s": took, "per_type": per_type, "units_changed": len(changed),
            "changed": {n: [best.choice[n].label, pick.choice[n].label] for n in changed},
            "loss_whole_choice": loss_of(best.choice), "loss_sampled_choice": loss_of(pick.choice),
            "bytes_whole_choice": best.nbytes, "bytes_sampled_choice": pick.nbytes})
    return out


class _Unit(nn.Module):
    def __init__(self, rows: int, cols: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = nn.Linear(cols, rows, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(rows, cols, generator=g) * 0.02)


def eight_b() -> dict:
    """Time to price two of the 8 B shape's units in the five lattice types, whole and sampled."""
    cands = [ggml_format(t) for t in LATTICE]
    rows_out = {}
    rates = []
    units = {"gate_proj 14336×4096": (14336, 4096), "down_proj 4096×14336": (4096, 14336)}
    for label, (rows, cols) in units.items():
        model = _Unit(rows, cols, seed=rows)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(2048, cols, generator=g)
        from quanta.model.quantize.quantizers import LayerStats

        st = LayerStats(cols, with_hessian=True)
        st.add(x)
        sens = mixed.Sensitivity({"lin": torch.rand(rows, generator=g)}, {"lin": st}, None, 2048)
        row = {}
        for cap, tag in ((1 << 40, "whole"), (None, "sampled")):
            t0 = time.perf_counter()
            loss = priced(model, sens, ["lin"], {"lin": cands}, cap)["lin"]
            row[f"{tag}_s"] = time.perf_counter() - t0
            row[f"{tag}_loss"] = loss.tolist()
        rows_out[label] = row
        rates.append((row["whole_s"] / (rows * cols), row["sampled_s"] / len(cands)))
        console.print(f"{label}: whole {row['whole_s']:.1f} s, sampled {row['sampled_s']:.2f} s")
    per_weight = float(np.mean([r[0] for r in rates]))  # seconds per weight, the five types
    per_unit = float(np.mean([r[1] for r in rates]))  # seconds per sampled unit and type
    weights = sum(r * c * k for r, c, k in SHAPES_8B.values())
    units = sum(k for *_, k in SHAPES_8B.values())
    return {"units": rows_out, "model_weights": weights, "model_units": units,
            "model_whole_s": per_weight * weights, "model_sampled_s": per_unit * units * len(cands)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--caps", default="65536,262144")
    ap.add_argument("--target-bpw", type=float, default=5.0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    caps = [int(c) for c in args.caps.split(",")]
    small = smollm2(caps, args.target_bpw)
    rows = []
    for c in small["caps"]:
        for t, v in c["per_type"].items():
            rows.append([f"{c['cap']:,} ({c['rows_taken']} rows)", t, f"{v['median_ratio']:.3f}",
                         f"{v['worst_ratio']:.3f}", f"{v['mean_abs_dev']:.3f}"])
    print_table("SmolLM2's 30 ffn_down layers: a lattice type's sampled price over its whole price",
                ["cap (rows of 576 taken)", "type", "median", "worst", "mean |ratio − 1|"], rows)
    print_table(f"the allocator at --target-bpw {small['target_bpw']} (every unit, every GGUF candidate)",
                ["cap", "pricing", "units changed", "loss: whole table's choice", "sampled table's choice",
                 "bytes (whole / sampled)"],
                [["whole", f"{small['whole_pricing_s']:.0f} s", "—", "", "", ""]] +
                [[f"{c['cap']:,}", f"{c['pricing_s']:.0f} s", str(c["units_changed"]),
                  f"{c['loss_whole_choice']:.5f}", f"{c['loss_sampled_choice']:.5f}",
                  f"{c['bytes_whole_choice']:,} / {c['bytes_sampled_choice']:,}"] for c in small["caps"]])
    big = eight_b()
    print_table("Llama 3.1 8B shape, seeded random weights (time only): pricing in the 5 lattice types",
                ["unit", "whole", f"sampled (cap {pricing.LATTICE_PRICE_WEIGHTS:,})"],
                [[k, f"{v['whole_s']:.1f} s", f"{v['sampled_s']:.2f} s"] for k, v in big["units"].items()] +
                [[f"the model ({big['model_units']} units, {big['model_weights'] / 1e9:.2f} B weights)",
                  f"{big['model_whole_s'] / 60:.0f} min", f"{big['model_sampled_s'] / 60:.1f} min"]])
    path = write_json("model_lattice_price", {"machine_line": machine(), "smollm2": small, "llama_8b": big})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
