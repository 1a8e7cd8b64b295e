"""``QuantLinear``: a Linear layer that keeps only packed codes and scales in memory.

Three forward paths, chosen per layer at construction:

* "int4pack": 4-bit grids with groups of 32–256, ``out_features % 16 == 0`` and
  ``in_features % group == 0`` → PyTorch's ``_weight_int4pack_mm_for_cpu`` (bf16 activations).
* "int8pack": up to 8 bits, one group per row (per output channel, symmetric) and
  ``in_features % 16 == 0`` → ``_weight_int8pack_mm`` (bf16 activations; a 5- or 6-bit row's
  codes minus its zero point are int8 too). torch 2.13's kernel gives wrong results for other
  K, so those layers take the fallback. A folder stores such a layer's codes bit-packed at its
  own width (:meth:`QuantLinear.disk_state`) and widens them to int8 when it loads.
* "packed": anything else (2, 3, 5–7 bits in groups, NF4, odd shapes) → codes bit-packed with
  :mod:`quanta.core.packing`, unpacked and dequantized on the fly, then a float matmul.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from quanta.core.grid import Grid
from quanta.core.packing import pack, unpack_torch
from quanta.model.quantizers import QuantizedWeight, dequantize_codes


def choose_path(qw: QuantizedWeight) -> str:
    """The forward path for a quantized weight: "int4pack", "int8pack" or "packed" (rules above)."""
    out, inp = qw.codes.shape  # inp: padded to a multiple of the group size
    on_grid = qw.codebook is None
    if on_grid and qw.bits == 4 and qw.group_size in (32, 64, 128, 256) \
            and out % 16 == 0 and inp % qw.group_size == 0:
        return "int4pack"
    if on_grid and qw.group_size == inp and inp % 16 == 0 and bool(torch.all(qw.zeros == _zero(qw.bits))):
        return "int8pack"
    return "packed"


class QuantLinear(nn.Module):
    """A quantized ``nn.Linear`` (weight ``(out, in)``), built with :meth:`from_quantized`."""

    def __init__(self, in_features: int, out_features: int, *, bits: int, group_size: int,
                 method: str, path: str, bias: bool = False, padded_in: int | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.padded_in = padded_in or in_features  # codes' width: a multiple of group_size
        self.bits, self.group_size, self.method, self.path = bits, group_size, method, path
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    def from_quantized(cls, qw: QuantizedWeight, bias: torch.Tensor | None = None,
                       path: str | None = None) -> QuantLinear:
        """Build the layer from a :class:`QuantizedWeight` (``path``: force a forward path)."""
        out, inp = qw.codes.shape
        path = path or choose_path(qw)
        m = cls(qw.in_features, out, bits=qw.bits, group_size=qw.group_size, method=qw.method,
                path=path, bias=bias is not None, padded_in=inp)
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
            w8 = (qw.codes.to(torch.int16) - _zero(qw.bits)).to(torch.int8)
            m.register_buffer("w_int8", w8.contiguous())
            m.register_buffer("scales", qw.scales[:, 0].to(torch.bfloat16).contiguous())
        else:
            data = pack(qw.codes.numpy().astype("uint8").ravel(), qw.bits)
            m.register_buffer("packed", torch.from_numpy(data))
            m.register_buffer("scales", qw.scales.to(torch.float16).contiguous())
            if qw.zeros is not None:
                m.register_buffer("zeros", qw.zeros.to(torch.float16).contiguous())
            if qw.codebook is not None:
                m.register_buffer("codebook", torch.as_tensor(qw.codebook, dtype=torch.float32))
        return m

    def disk_state(self) -> dict[str, torch.Tensor]:
        """The tensors a folder stores for the weight (names relative to the layer): the
        buffers, except that an int8-kernel layer of fewer than 8 bits keeps its codes packed
        at their width ("packed") instead of the int8 matrix (:meth:`widen` undoes it)."""
        out = dict(self.named_buffers())
        if self.path == "int8pack" and self.bits < 8:
            codes = (out.pop("w_int8").to(torch.int16) + _zero(self.bits)).to(torch.uint8)
            out["packed"] = torch.from_numpy(pack(codes.numpy().ravel(), self.bits))
        return out

    def widen(self, packed: torch.Tensor) -> None:
        """Install the int8 matrix of an int8-kernel layer from its stored packed codes."""
        n = self.out_features * self.padded_in
        codes = unpack_torch(packed, self.bits, n).view(self.out_features, self.padded_in)
        self.register_buffer("w_int8", (codes.to(torch.int16) - _zero(self.bits)).to(torch.int8).contiguous())

    def set_input_scale(self, scale: torch.Tensor) -> None:
        """Multiply every input by ``scale`` (``(in_features,)``) before the matmul: AWQ's
        scales where no earlier layer can absorb them."""
        self.register_buffer("input_scale", scale.detach().to(torch.float32).reshape(self.in_features))

    def weight_bytes(self) -> int:
        """Bytes held for the weight (codes, scales, zero points; bias excluded)."""
        return sum(b.numel() * b.element_size() for n, b in self.named_buffers())

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
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        s = getattr(self, "input_scale", None)
        if s is not None:
            x2 = x2 * s.to(x2.dtype)
        if self.path == "int4pack" and self.padded_in != self.in_features:
            x2 = torch.nn.functional.pad(x2, (0, self.padded_in - self.in_features))
        kernel = self.kernel()
        if kernel is not None:
            y = kernel(x2.to(torch.bfloat16).contiguous())
        else:
            y = x2 @ self.dequantize_weight(x.dtype).t()
        y = y.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features} (stored {self.padded_in}), out={self.out_features}, "
                f"bits={self.bits}, group={self.group_size}, method={self.method}, path={self.path}")


def _zero(bits: int) -> int:
    """The zero point of a symmetric grid of unsigned ``bits``-bit codes (the core's one rule)."""
    return int(Grid(bits=bits, signed=False).default_zero_point)
