"""Which rows the sensitivity pass rounds to price a unit in a format
(:func:`quanta.model.quantize.mixed.unit_losses`): all of them, but a lattice type's — a grid
search per weight — only on a sample of a large unit's rows. Plain functions of shapes, no torch:
the plan's predicted time counts the same rows (:func:`quanta.model.quantize.cost.for_plan`).
"""

from __future__ import annotations

from typing import Any

#: the most weights of one unit a lattice type is priced on: a larger unit's rows are sampled
#: (:func:`~quanta.model.quantize.mixed.unit_losses`). The lattice search costs ~0.35 µs a
#: weight on 2 cores (:data:`~quanta.model.quantize.cost.LATTICE_PRICE_S_PER_WEIGHT`): an 8 B
#: model's units would take ~1 h per lattice type whole, ~3 min this way
#: (bench/model_lattice_price.py); a 135 M model's layers (under a million weights each) are
#: priced whole
LATTICE_PRICE_WEIGHTS = 1 << 20


def price_stride(fmt: Any, rows: int, cols: int) -> int:
    """Every how many rows a ``rows × cols`` unit is sampled to price it in ``fmt``: 1 (all of
    them) but for a lattice type on a unit of more than :data:`LATTICE_PRICE_WEIGHTS` weights."""
    kind = fmt.block_type
    if kind is None or not kind.lattice:
        return 1
    return -(-rows * cols // LATTICE_PRICE_WEIGHTS)


def priced_rows(fmt: Any, rows: int, cols: int) -> int:
    """How many of a ``rows × cols`` unit's rows are rounded to price it in ``fmt``: all, or for
    a sampled lattice type every k-th row and a quarter as many more
    (:func:`~quanta.model.quantize.mixed.unit_losses`)."""
    k = price_stride(fmt, rows, cols)
    even = -(-rows // k)
    return rows if k == 1 else min(rows, even + -(-even // 4))


__all__ = ["LATTICE_PRICE_WEIGHTS", "price_stride", "priced_rows"]
