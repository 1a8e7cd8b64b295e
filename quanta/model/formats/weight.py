"""Storage formats of weights: what is stored, apart from how it is rounded.

A format answers, for a ``rows × cols`` matrix, how many bytes it takes (:meth:`WeightFormat.nbytes`,
exact), which shapes it accepts (:meth:`WeightFormat.fits`) and, for a GGML block type, the grid
its file keeps (:func:`storage_grid`: float16 scales, a K-quant's super-block factors). Rounding
methods (:mod:`quanta.model.quantize.quantizers`) receive a format; the exporter, the mixed-precision
allocator and the size predictions all read the same numbers from here.

GGML block types take their block size and bytes per block from the ``gguf`` package's
``GGML_QUANT_SIZES`` (llama.cpp's own table), never from a copy. No torch at import: planning
and ``--dry-run`` use this module before any weight is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quanta.core.codebook import IQ4_NL
from quanta.core.grid import Grid
from quanta.errors import ConfigError

#: weights per block of llama.cpp's legacy types (Q4_0 … Q8_0, IQ4_NL)
BLOCK = 32
#: the group sizes a quanta folder's layers take by default, largest first
AUTO_GROUPS = (128, 64, 32)


def weight_grid(bits: int, group_size: int, symmetric: bool) -> Grid:
    """The grid of model weights: unsigned codes (a symmetric grid is centred on
    ``2**(bits-1)``), one group of ``group_size`` inputs per scale, along axis 1."""
    return Grid(bits=bits, signed=False, symmetric=symmetric, granularity="group", axis=1,
                group_size=group_size)


def default_zero(bits: int) -> int:
    """The zero point of a symmetric grid of unsigned ``bits``-bit codes (the core's one rule)."""
    return int(weight_grid(bits, 1, symmetric=True).default_zero_point)


def auto_group(in_features: int) -> int:
    """The group size of ``group_size=None``: the largest of :data:`AUTO_GROUPS` that divides
    the layer's inputs, else 128 (zero-padded), or the whole row when it is narrower."""
    return next((g for g in AUTO_GROUPS if in_features % g == 0), min(AUTO_GROUPS[0], in_features))


def _ggml_size(name: str) -> tuple[int, int]:
    """(weights per block, bytes per block) of a GGML type, from gguf-py's table."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    return GGML_QUANT_SIZES[GGMLQuantizationType[name]]


@dataclass(frozen=True)
class BlockType:
    """A GGML block type quanta writes: its grid (bits, symmetric, or a codebook's levels) and
    the weights per scale (``group``); the block and its bytes come from GGML's table. A
    super-block type (:mod:`quanta.model.formats.kquant`) keeps each group's scale as an integer
    factor in ``factors`` of its float16 ``d``, and, asymmetric, each group's offset as a factor
    in ``0..min_top`` of its float16 ``dmin``. A lattice type rounds vectors of 4 or 8 weights
    together onto a grid of points (``bits``: its nominal bits per weight, rounded down)."""

    name: str
    bits: int
    sym: bool
    codebook: np.ndarray | None = None  # levels ``w = d · codebook[q]`` instead of a grid
    group: int = BLOCK
    factors: tuple[int, int] | None = None
    min_top: int = 0
    #: a lattice type (:mod:`quanta.model.formats.lattice`): vectors of weights on a grid of
    #: points, signs apart, a 4-bit factor of one float16 ``d`` per group
    lattice: bool = False
    block: int = field(init=False)
    type_size: int = field(init=False)

    def __post_init__(self) -> None:
        block, size = _ggml_size(self.name)
        object.__setattr__(self, "block", block)
        object.__setattr__(self, "type_size", size)

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.type_size / self.block

    def nbytes(self, n_weights: int) -> int:
        """Bytes of ``n_weights`` weights (a multiple of the block) in this type."""
        return n_weights // self.block * self.type_size

    def fits(self, width: int) -> bool:
        """Whether rows ``width`` weights wide are whole blocks of this type."""
        return width % self.block == 0


#: name → type, smallest first (ggml's factor ranges: Q3_K's and IQ4_XS's 6-bit signed
#: factors reach −32, Q6_K's int8 factors −128)
BLOCK_TYPES = {t.name: t for t in (
    BlockType("IQ2_XXS", 2, True, lattice=True), BlockType("IQ2_XS", 2, True, group=16, lattice=True),
    BlockType("IQ2_S", 2, True, group=16, lattice=True),
    BlockType("Q2_K", 2, False, group=16, factors=(1, 15), min_top=15),
    BlockType("IQ3_XXS", 3, True, lattice=True), BlockType("IQ3_S", 3, True, lattice=True),
    BlockType("Q3_K", 3, True, group=16, factors=(-32, 31)),
    BlockType("IQ4_XS", 4, True, IQ4_NL, factors=(-32, 31)),
    BlockType("Q4_0", 4, True), BlockType("IQ4_NL", 4, True, IQ4_NL),
    BlockType("Q4_K", 4, False, factors=(1, 63), min_top=63),
    BlockType("Q4_1", 4, False), BlockType("Q5_0", 5, True),
    BlockType("Q5_K", 5, False, factors=(1, 63), min_top=63),
    BlockType("Q5_1", 5, False), BlockType("Q6_K", 6, True, group=16, factors=(-128, 127)),
    BlockType("Q8_0", 8, True))}


def gguf_type(bits: int, sym: bool, group_size: int) -> str:
    """The GGML type for a quanta grid, or a :class:`ConfigError` naming what is supported."""
    kind = next((t.name for t in BLOCK_TYPES.values() if t.bits == bits and t.block == BLOCK
                 and t.sym == (sym or bits == 8) and t.codebook is None), None)
    if kind is None or group_size != BLOCK:
        raise ConfigError("--format gguf writes Q8_0 (--bits 8), Q5_0/Q4_0 (--bits 5/4 --sym) or "
                          f"Q5_1/Q4_1 (--bits 5/4) in groups of {BLOCK}; got {bits} bits in groups of "
                          f"{group_size}")
    return kind


def storage_grid(scale: Any, zero: Any, kind: str, w: Any = None, weights: Any = None) -> tuple[Any, Any]:
    """The grid as the file stores it: ``d`` rounded to float16 (never to zero; a codebook
    type's scale keeps its sign), and for the asymmetric types the zero point that the float16
    ``m = −d·z`` implies; a super-block type's scales and offsets on its grid
    (:func:`quanta.model.formats.kquant.on_grid`) — given the weights ``w`` (and per-weight
    ``weights`` of their error), with each group's integer factors then moved where that lowers
    the error of round to nearest (:func:`quanta.model.formats.kquant.refine`; not for a
    codebook type)."""
    import torch

    t = BLOCK_TYPES[kind]
    if t.factors:
        from quanta.model.formats import kquant

        per, qmax = t.block // t.group, 2**t.bits - 1
        zeros = zero.detach().float().numpy() if t.min_top else None
        s, z = kquant.on_grid(scale.detach().float().numpy(), zeros, per, t.factors, t.min_top, qmax)
        if w is not None and t.codebook is None:
            z = zero.detach().float().numpy() if z is None else z
            s, z = kquant.refine(w.detach().float().numpy(),
                                 None if weights is None else weights.detach().float().numpy(),
                                 s, z, per, t.factors, t.min_top, qmax)
        return torch.from_numpy(s), torch.from_numpy(z) if t.min_top else zero

    s = scale.to(torch.float16).to(torch.float32)
    tiny = torch.where(scale < 0, -(2.0**-24), 2.0**-24).to(torch.float32)
    s = torch.where(s != 0, s, tiny) if BLOCK_TYPES[kind].codebook is not None else \
        torch.where(s > 0, s, tiny.abs())
    if BLOCK_TYPES[kind].sym:
        return s, zero
    m = (-s * zero).to(torch.float16).to(torch.float32)
    return s, -m / s


#: the tensors of one quantized weight in a quanta folder (format 2), in this order: name →
#: (dtype, what it holds). Kernel-neutral: a loader re-lays them for the kernel that runs them.
FOLDER_TENSORS = {
    "codes": ("uint8", "the codes of the rows × width matrix, row-major, bit-packed by "
                       "quanta.core.packing.pack (width: the inputs padded to whole groups)"),
    "scales": ("float16", "rows × groups: each group's scale"),
    "zeros": ("float16", "rows × groups: each group's zero point in code units (asymmetric grids "
                         "only; a symmetric grid's is 2**(bits − 1))"),
    "codebook": ("float32", "the levels of a codebook grid (weight = scale · codebook[code])"),
}


def folder_layout(rows: int, width: int, bits: int, groups: int, *, zeros: bool,
                  levels: int = 0) -> dict[str, tuple[tuple[int, ...], str]]:
    """The shapes and dtypes of a quantized weight's tensors in a quanta folder
    (:data:`FOLDER_TENSORS`): ``rows × width`` codes of ``bits`` bits, ``groups`` groups per row,
    zero points when the grid is asymmetric (``zeros``), a codebook of ``levels`` levels."""
    out = {"codes": ((-(-rows * width * bits // 8),), "uint8"), "scales": ((rows, groups), "float16")}
    if zeros:
        out["zeros"] = ((rows, groups), "float16")
    if levels:
        out["codebook"] = ((levels,), "float32")
    return out


def layout_bytes(layout: dict[str, tuple[tuple[int, ...], str]]) -> int:
    """Bytes of the tensors of a :func:`folder_layout`."""
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in layout.values())


@dataclass(frozen=True)
class WeightFormat:
    """One storage format of a weight matrix: a grid (bits, group size — 0 for one group per
    row, None for the largest of :data:`AUTO_GROUPS` dividing each layer's inputs —, symmetric)
    and, for GGUF, the GGML block type that stores it (``ggml``). A rounding method
    (:class:`quanta.model.quantize.quantizers.WeightQuantizer`) is built on one.

    A quanta folder stores the tensors of :func:`folder_layout` (codes, float16 scales, and
    float16 zero points for an asymmetric grid); a GGML type stores its blocks."""

    label: str
    bits: int
    group_size: int | None
    sym: bool = False
    ggml: str | None = None
    #: a quanta folder's codebook grid: the GGML codebook type (``"IQ4_NL"``) whose levels it
    #: rounds onto and whose signed float16 scales it keeps — stored as a folder stores any
    #: codebook (codes, a scale per group, the levels once per layer), not as that type's blocks
    levels: str | None = None

    def group_for(self, cols: int) -> int:
        """The group size on rows ``cols`` wide (None resolved by :func:`auto_group`)."""
        return auto_group(cols) if self.group_size is None else self.group_size

    @property
    def block_type(self) -> BlockType | None:
        return BLOCK_TYPES[self.ggml] if self.ggml else None

    @property
    def codebook_type(self) -> str | None:
        """The GGML type whose codebook this format rounds onto (a GGUF IQ4_NL block, or a
        folder's :attr:`levels`), or None for a grid."""
        kind = self.ggml or self.levels
        return kind if kind and BLOCK_TYPES[kind].codebook is not None else None

    def width(self, cols: int, *, embedding: bool = False) -> int:
        """The stored width of rows ``cols`` wide: whole groups (zero-padded); a token
        embedding's rows are also whole bytes (a multiple of 8 codes: rows are read alone)."""
        g = self.group_for(cols)
        if g in (0, -1):
            return -(-cols // 8) * 8 if embedding else cols
        return -(-cols // g) * g

    def layout(self, rows: int, cols: int, *,
               embedding: bool = False) -> dict[str, tuple[tuple[int, ...], str]]:
        """The folder tensors of a ``rows × cols`` weight in this format (:func:`folder_layout`)."""
        width, g = self.width(cols, embedding=embedding), self.group_for(cols)
        groups = 1 if g in (0, -1) else width // g
        levels = 0 if self.levels is None else len(BLOCK_TYPES[self.levels].codebook)
        return folder_layout(rows, width, self.bits, groups, zeros=not (self.sym or levels), levels=levels)

    def nbytes(self, rows: int, cols: int, *, embedding: bool = False) -> int:
        """Bytes of a ``rows × cols`` weight in this format (codes, scales, zero points), exact:
        a GGML type's blocks, or the tensors a quanta folder stores (``embedding``: as a token
        embedding, rows padded to whole bytes)."""
        if self.ggml:
            return BLOCK_TYPES[self.ggml].nbytes(rows * cols)
        return layout_bytes(self.layout(rows, cols, embedding=embedding))

    def fits(self, cols: int) -> bool:
        """Whether rows ``cols`` wide can be stored (a GGML type needs whole blocks)."""
        return self.block_type.fits(cols) if self.ggml else True


def grid_format(bits: int, group_size: int | None = None, sym: bool = False) -> WeightFormat:
    """quanta's grid of ``bits`` in groups of ``group_size`` (0: one per row; None: per layer)."""
    g = "auto" if group_size is None else ("row" if group_size in (0, -1) else group_size)
    return WeightFormat(f"{bits}-bit g{g}" + (" sym" if sym else ""), bits, group_size, sym)


def ggml_format(name: str) -> WeightFormat:
    """The format of GGML type ``name``."""
    t = BLOCK_TYPES[name]
    return WeightFormat(t.name, t.bits, t.group, t.sym, t.name)


def gguf_formats(takes_levels: bool = True, width: int | None = None, *,
                 lattice: bool = True) -> list[WeightFormat]:
    """llama.cpp's block types quanta writes — the codebook and lattice types only for methods
    that round onto a codebook (``takes_levels``), the K-quants and lattice types only for rows
    ``width`` wide that hold whole super-blocks (every type when ``width`` is None), the lattice
    types only with ``lattice``."""
    return [ggml_format(t.name) for t in BLOCK_TYPES.values()
            if (takes_levels or (t.codebook is None and not t.lattice)) and (lattice or not t.lattice)
            and (width is None or t.fits(width))]


def row_formats() -> list[WeightFormat]:
    """5 to 8 bits with one symmetric scale per row: PyTorch's int8 kernel runs them all (a
    folder stores the narrower codes packed)."""
    return [WeightFormat(f"{b}-bit row", b, 0, sym=True) for b in (5, 6, 7, 8)]


#: a quanta folder's codebook grid: llama.cpp's IQ4_NL levels, a signed float16 scale per
#: group of 32 (4.5 bits per weight, as Q4_0's bytes; the compiled kernels run it as IQ4_NL)
NL4 = WeightFormat("4-bit g32 nl", 4, BLOCK, sym=True, levels="IQ4_NL")


def sym_groups(bits: int, width: int | None = None, takes_levels: bool = True,
               compiled: bool = True) -> list[WeightFormat]:
    """Symmetric grids in groups of 32 — a float16 scale each, no zero point: llama.cpp's
    Q4_0/Q5_0/Q8_0 grids — at ``bits`` and at each of 4, 5, 6 and 8 bits above it, with
    :data:`NL4` in place of the 4-bit one (the same bytes, levels that follow the weights) for
    methods that round onto a codebook (``takes_levels``); none for rows ``width`` inputs wide
    that are narrower than a group, and none for a model that the compiled kernels do not run
    (``compiled`` False): they run these as Q4_0, Q5_0, Q8_0 and IQ4_NL blocks, where PyTorch's
    path would unpack all but the 4-bit grid on every product."""
    if not compiled or (width is not None and width < BLOCK):
        return []
    nl = bits <= 4 and takes_levels
    grids = [WeightFormat(f"{b}-bit g{BLOCK} sym", b, BLOCK, sym=True)
             for b in sorted({bits} | {b for b in (4, 5, 6, 8) if b > bits}) if not (nl and b == 4)]
    return grids + ([NL4] if nl else [])


def quanta_formats(width: int | None = None, takes_levels: bool = True,
                   compiled: bool = True) -> list[WeightFormat]:
    """quanta's own grids (asymmetric, groups of 128, 64 or 32 — those no wider than ``width``):
    3, 4, 5, 6 and 8 bits; symmetric groups of 32 from 3 to 8 bits and the :data:`NL4` codebook
    (:func:`sym_groups`, for a model the compiled kernels run); and 5 to 8 bits with one
    symmetric scale per row (PyTorch's int8 kernel; 4 bits take the int4 kernel)."""
    return [WeightFormat(f"{b}-bit g{g}", b, g) for b, g in
            ((3, 64), (3, 32), (4, 128), (4, 64), (4, 32), (5, 64), (5, 32), (6, 32), (8, 32))
            if width is None or g <= width] + sym_groups(3, width, takes_levels, compiled) + row_formats()


def default_formats(bits: int, width: int | None = None, takes_levels: bool = True,
                    compiled: bool = True) -> list[WeightFormat]:
    """What a quanta folder's ``--bits B`` (no group size, no target) chooses among for a layer
    ``width`` inputs wide: ``B`` bits in groups of 128, 64 or 32 (no wider than the layer) or 5
    to 8 bits per row — each on a PyTorch kernel at 4 bits (int4, int8) — and, for a model the
    compiled kernels run, the symmetric groups of 32 at ``B`` and more bits and (``B`` ≤ 4,
    ``takes_levels``) the :data:`NL4` codebook (:func:`sym_groups`)."""
    return [WeightFormat(f"{bits}-bit g{g}", bits, g) for g in (128, 64, 32)
            if width is None or g <= width] + sym_groups(bits, width, takes_levels, compiled) + row_formats()


def embedding_formats(compiled: bool = True) -> list[WeightFormat]:
    """The grids a quanta folder's token embedding may take: 4 bits in groups of 64 or 32 and 5
    to 8 bits with one symmetric scale per row (a tied output head runs PyTorch's int4 or int8
    kernel), and for a model the compiled kernels run the symmetric groups of 32 at 4, 5, 6 and
    8 bits (:func:`sym_groups`: Q4_0 and Q8_0 blocks there) — no codebook: a row is looked up on
    its grid."""
    return [WeightFormat("4-bit g64", 4, 64), WeightFormat("4-bit g32", 4, 32),
            *sym_groups(4, takes_levels=False, compiled=compiled), *row_formats()]


#: the token embedding's format in a quanta folder by default: 8 bits, one symmetric scale per
#: row (a tied output head runs PyTorch's int8 kernel)
EMBEDDING_ROWS = WeightFormat("8-bit row", 8, 0, sym=True)
