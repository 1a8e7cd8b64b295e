"""``QuantLinear``: a Linear layer that keeps only packed codes and scales in memory.

Three forward paths, chosen per layer at construction:

* "int4pack": 4-bit grids with groups of 32–256, ``out_features % 16 == 0`` and
  ``in_features % group == 0`` → PyTorch's ``_weight_int4pack_mm_for_cpu`` (bf16 activations).
* "int8pack": up to 8 bits, one group per row (per output channel, symmetric) and
  ``in_features % 16 == 0`` → ``_weight_int8pack_mm`` (bf16 activations; a 5- or 6-bit row's
  codes minus its zero point are int8 too). torch 2.13's kernel gives wrong results for other
  K, so those layers take the fallback.
* "packed": anything else (2, 3, 5–7 bits in groups, NF4, odd shapes) → codes bit-packed with
  :mod:`quanta.core.packing`, unpacked and dequantized on the fly, then a float matmul.

These buffers are the kernel's layout, held in memory only: a folder stores every layer in the
kernel-neutral form of :mod:`quanta.model.formats.stored` (:meth:`QuantLinear.disk_state`), and the path
is chosen again when it is loaded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from quanta.core.packing import unpack_torch
from quanta.model.formats import stored
from quanta.model.formats.weight import default_zero
from quanta.model.quantize.quantizers import QuantizedWeight, dequantize_codes


def choose_path(qw: QuantizedWeight) -> str:
    """The forward path for a quantized weight: "int4pack", "int8pack" or "packed" (rules above)."""
    out, inp = qw.codes.shape  # inp: padded to a multiple of the group size
    on_grid = qw.codebook is None
    if on_grid and qw.bits == 4 and qw.group_size in (32, 64, 128, 256) \
            and out % 16 == 0 and inp % qw.group_size == 0:
        return "int4pack"
    if on_grid and qw.group_size == inp and inp % 16 == 0 \
            and bool(torch.all(qw.zeros == default_zero(qw.bits))):
        return "int8pack"
    return "packed"


class QuantLinear(nn.Module):
    """A quantized ``nn.Linear`` (weight ``(out, in)``), built with :meth:`from_quantized`."""

    def __init__(self, in_features: int, out_features: int, *, bits: int, group_size: int,
                 method: str, path: str, bias: bool = False, padded_in: int | None = None,
                 sym: bool = False, levels: int = 0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.padded_in = padded_in or in_features  # codes' width: a multiple of group_size
        self.bits, self.group_size, self.method, self.path = bits, group_size, method, path
        self.sym, self.levels = sym, levels
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        #: the folder tensors (:mod:`quanta.model.formats.stored`) of a layer quantized in this process
        self.folder_tensors: dict[str, torch.Tensor] | None = None
        self.hold_weight(False)

    @classmethod
    def from_quantized(cls, qw: QuantizedWeight, bias: torch.Tensor | None = None,
                       path: str | None = None, *, keep: bool = True) -> QuantLinear:
        """Build the layer from a :class:`QuantizedWeight`, its scales and zero points first
        rounded as a folder keeps them (:func:`~quanta.model.formats.stored.canonical`); ``path``: force
        a forward path; ``keep``: hold the folder tensors for :meth:`disk_state` (a layer loaded
        from a folder needs not)."""
        qw = stored.canonical(qw)
        spec = stored.spec_of(qw)
        out, inp = qw.codes.shape
        path = path or choose_path(qw)
        m = cls(qw.in_features, out, bits=qw.bits, group_size=qw.group_size, method=qw.method,
                path=path, bias=bias is not None, padded_in=inp, sym=spec["sym"], levels=spec["levels"])
        tensors = stored.store(qw) if keep or path == "packed" else None
        m.folder_tensors = tensors if keep else None
        if bias is not None:
            m.bias.data.copy_(bias.detach().float())
        if path == "int4pack":
            codes = qw.codes.to(torch.int32).contiguous()
            m.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1))
            # the kernel computes (q − 8)·s + z; ours is s·(q − zero)
            z = qw.scales * (8.0 - qw.zeros)
            sz = torch.stack([qw.scales.t(), z.t()], dim=-1).to(torch.bfloat16).contiguous()
            m.register_buffer("scales_zeros", sz)
        elif path == "int8pack":
            w8 = (qw.codes.to(torch.int16) - default_zero(qw.bits)).to(torch.int8)
            m.register_buffer("w_int8", w8.contiguous())
            m.register_buffer("scales", qw.scales[:, 0].to(torch.bfloat16).contiguous())
        else:  # the folder's own tensors: packed codes, float16 scales (and zero points), levels
            m.register_buffer("packed", tensors["codes"])
            m.register_buffer("scales", tensors["scales"])
            if qw.zeros is not None:
                m.register_buffer("zeros", tensors.get("zeros", qw.zeros.to(torch.float16)))
            if qw.codebook is not None:
                m.register_buffer("codebook", tensors["codebook"])
        return m

    def spec(self) -> dict:
        """The folder's spec of this layer's weight (:mod:`quanta.model.formats.stored`)."""
        return {"out": self.out_features, "in": self.in_features, "padded_in": self.padded_in,
                "bits": self.bits, "group_size": self.group_size, "sym": self.sym, "method": self.method,
                "levels": self.levels}

    def disk_state(self) -> dict[str, torch.Tensor]:
        """The tensors a folder stores for this layer (names relative to it): the weight's
        kernel-neutral tensors (:mod:`quanta.model.formats.stored`), the bias and AWQ's input scale."""
        if self.folder_tensors is None:
            raise RuntimeError("this layer keeps no folder tensors (loaded from a file, or dropped once "
                               "another writer took its codes)")
        extra = {k: getattr(self, k) for k in ("bias", "input_scale") if getattr(self, k, None) is not None}
        return {**self.folder_tensors, **{k: v.detach().contiguous() for k, v in extra.items()}}

    def compact(self) -> None:
        """Drop the kernel's layout, keeping the folder tensors: a layer that will only be
        written from here on (its forward then refuses to run)."""
        if self.folder_tensors is None:
            return
        for k in ("packed", "scales_zeros", "w_int8", "scales", "zeros", "codebook"):
            self._buffers.pop(k, None)
        self.compacted = True

    def park(self, spill: Any) -> None:
        """Compact the layer and move its folder tensors into ``spill``
        (:class:`~quanta.model.formats.spill.Spill`): :meth:`disk_state` then gives
        :class:`~quanta.model.formats.spill.Parked` records in their place, which the folder
        writer copies from the spill file."""
        self.compact()
        if self.folder_tensors is not None:
            self.folder_tensors = {k: spill.put(v) for k, v in self.folder_tensors.items()}

    def drop(self) -> None:
        """Compact the layer and let go of its folder tensors too: a layer whose codes another
        writer already took (a GGUF file's blocks); it keeps its shape and spec."""
        self.compact()
        self.folder_tensors = None

    def widen(self, packed: torch.Tensor) -> None:
        """Install the int8 matrix of an int8-kernel layer from packed codes (a folder of
        format 1 stored a narrow layer's codes so)."""
        n = self.out_features * self.padded_in
        codes = unpack_torch(packed, self.bits, n).view(self.out_features, self.padded_in)
        w8 = (codes.to(torch.int16) - default_zero(self.bits)).to(torch.int8)
        self.register_buffer("w_int8", w8.contiguous())

    def set_input_scale(self, scale: torch.Tensor) -> None:
        """Multiply every input by ``scale`` (``(in_features,)``) before the matmul: AWQ's
        scales where no earlier layer can absorb them."""
        self.register_buffer("input_scale", scale.detach().to(torch.float32).reshape(self.in_features))

    def weight_bytes(self) -> int:
        """Bytes a folder stores for the weight (codes, scales, zero points; bias excluded)."""
        return stored.nbytes(self.spec())

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float weight this layer stores (for tests and the fallback path)."""
        out, inp, g = self.out_features, self.padded_in, self.group_size
        k = self.in_features
        if self.path == "int4pack":
            eye = torch.eye(inp, dtype=torch.bfloat16)
            return torch.ops.aten._weight_int4pack_mm_for_cpu(
                eye, self.packed, g, self.scales_zeros).t()[:, :k].to(dtype)
        if self.path == "int8pack":
            return (self.w_int8.float() * self.scales.float()[:, None]).to(dtype)
        codes = unpack_torch(self.packed, self.bits, out * inp).view(out, inp)
        cb = getattr(self, "codebook", None)
        w = dequantize_codes(codes, self.scales, getattr(self, "zeros", None), bits=self.bits,
                             group_size=g, codebook=None if cb is None else cb.numpy())
        return w[:, :k].to(dtype)

    def hold_weight(self, on: bool = True) -> None:
        """While on, the layer runs as a float matrix product with the weight its file stores
        (:meth:`stored_weight`), dequantized once and kept between forwards — an engine running
        many windows through a finished block: float32 activations on every path (the kernels
        take bf16), the codes unpacked once, and a float32 product at the machine's full speed
        (twice the int4 kernel's on a 256-token window); off lets go of it."""
        self._hold = on
        self._held: tuple[torch.dtype, torch.Tensor] | None = None

    def stored_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight as the folder tensors hold it (float16 scales: the kernels' bf16 ones are
        coarser); :meth:`dequantize_weight` when the layer keeps none in memory."""
        t = self.folder_tensors
        if t is None or not all(isinstance(v, torch.Tensor) for v in t.values()):
            return self.dequantize_weight(dtype)
        return stored.restore(self.spec(), t, "a held layer").dequantize().to(dtype)

    def _weight_for(self, dtype: torch.dtype) -> torch.Tensor:
        if not self._hold:
            return self.dequantize_weight(dtype)
        if self._held is None or self._held[0] != dtype:
            self._held = (dtype, self.stored_weight(dtype))
        return self._held[1]

    def kernel(self) -> Any:
        """The CPU kernel of this layer's path as ``x (rows, stored inputs) bf16 → (rows, out)
        bf16``, bound to the stored weight; None on the unpacking fallback path."""
        if self.path == "int4pack":
            packed, group, sz = self.packed, self.group_size, self.scales_zeros
            return lambda x: torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, group, sz)
        if self.path == "int8pack":
            w, scales = self.w_int8, self.scales
            return lambda x: torch.ops.aten._weight_int8pack_mm(x, w, scales)
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if getattr(self, "compacted", False):
            raise RuntimeError("this layer kept only what a file stores (QuantLinear.compact): "
                               "it does not run")
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        s = getattr(self, "input_scale", None)
        if s is not None:
            x2 = x2 * s.to(x2.dtype)
        kernel = None if self._hold else self.kernel()
        if kernel is not None:
            if self.path == "int4pack" and self.padded_in != self.in_features:
                x2 = torch.nn.functional.pad(x2, (0, self.padded_in - self.in_features))
            y = kernel(x2.to(torch.bfloat16).contiguous())
        else:
            y = x2 @ self._weight_for(x.dtype).t()
        y = y.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features} (stored {self.padded_in}), out={self.out_features}, "
                f"bits={self.bits}, group={self.group_size}, method={self.method}, path={self.path}")

