"""``QuantEmbedding``: a token embedding that keeps only bit-packed codes, scales and zero points.

A lookup unpacks and dequantizes just the rows asked for (each row's codes are whole bytes: the
stored width is a multiple of 8 codes). When the embedding is tied to the output head, the head
becomes a :class:`~quanta.model.runtime.qlinear.QuantLinear` built from the same codes (PyTorch's int4
kernel when the grid allows): one copy on disk, the head rebuilt when the folder is loaded.
"""

from __future__ import annotations

import torch
from torch import nn

from quanta.core.packing import pack, unpack_torch
from quanta.errors import ConfigError
from quanta.model.formats import stored
from quanta.model.quantize.quantizers import QuantizedWeight, dequantize_codes


class QuantEmbedding(nn.Module):
    """A quantized ``nn.Embedding`` (``num_embeddings × embedding_dim``), built with
    :meth:`from_quantized` or from a saved spec and its buffers."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, bits: int, group_size: int,
                 padded_dim: int, method: str, sym: bool = False) -> None:
        super().__init__()
        if padded_dim % 8 or padded_dim % group_size or padded_dim < embedding_dim:
            raise ConfigError(f"embedding: stored width {padded_dim} must hold {embedding_dim} and be a "
                              f"multiple of 8 and of the group size {group_size}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.bits, self.group_size, self.padded_dim, self.method = bits, group_size, padded_dim, method
        self.sym = sym

    @classmethod
    def from_quantized(cls, qw: QuantizedWeight) -> QuantEmbedding:
        if qw.codebook is not None or qw.zeros is None:
            raise ConfigError("a quantized embedding takes a grid with zero points (not a codebook)")
        qw = stored.canonical(qw)
        rows, width = qw.codes.shape
        m = cls(rows, qw.in_features, bits=qw.bits, group_size=qw.group_size, padded_dim=width,
                method=qw.method, sym=qw.sym)
        codes = qw.codes.numpy().astype("uint8", copy=False).ravel()  # a view: no second copy of the codes
        m.register_buffer("packed", torch.from_numpy(pack(codes, qw.bits)))
        m.register_buffer("scales", qw.scales.to(torch.float16).contiguous())
        m.register_buffer("zeros", qw.zeros.to(torch.float16).contiguous())
        return m

    def spec(self) -> dict:
        """The folder's spec of the table (:mod:`quanta.model.formats.stored`)."""
        return {"out": self.num_embeddings, "in": self.embedding_dim, "padded_in": self.padded_dim,
                "bits": self.bits, "group_size": self.group_size, "sym": self.sym, "method": self.method,
                "levels": 0}

    def disk_state(self) -> dict[str, torch.Tensor]:
        """The folder tensors of the table (:mod:`quanta.model.formats.stored`): the packed codes as
        held, the float16 scales, the zero points of an asymmetric grid."""
        return {"codes": self.packed, "scales": self.scales, **({} if self.sym else {"zeros": self.zeros})}

    @classmethod
    def from_spec(cls, spec: dict, tensors: dict[str, torch.Tensor], where: str) -> QuantEmbedding:
        """The table a folder stores (its spec checked by :func:`~quanta.model.formats.stored.check_spec`)."""
        from quanta.errors import InputError

        if spec["levels"] or spec["padded_in"] % 8:
            raise InputError(f"{where}: an embedding takes a grid of rows of whole bytes, not {spec}")
        return cls.from_quantized(stored.restore(spec, tensors, where))

    def weight_bytes(self) -> int:
        """Bytes a folder stores for the table."""
        return stored.nbytes(self.spec())

    def _rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Dequantized rows ``ids`` (1-D), float32, stored width."""
        per_row = self.padded_dim * self.bits // 8
        raw = self.packed.view(self.num_embeddings, per_row)[ids].reshape(-1)
        codes = unpack_torch(raw, self.bits, ids.numel() * self.padded_dim).view(-1, self.padded_dim)
        return dequantize_codes(codes, self.scales[ids], self.zeros[ids], bits=self.bits,
                                group_size=self.group_size)

    def quantized_weight(self) -> QuantizedWeight:
        """The whole table as a :class:`QuantizedWeight` (to build the tied head)."""
        codes = unpack_torch(self.packed, self.bits, self.num_embeddings * self.padded_dim)
        return QuantizedWeight(codes.view(self.num_embeddings, self.padded_dim).clone(), self.scales.float(),
                               self.zeros.float(), self.bits, self.group_size, self.method,
                               self.embedding_dim, sym=self.sym)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_embeddings):
            raise IndexError(f"token id outside 0..{self.num_embeddings - 1}")
        w = self._rows(flat)[:, : self.embedding_dim]
        return w.view(*ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}×{self.embedding_dim} (stored {self.padded_dim}), bits={self.bits}, "
                f"group={self.group_size}, method={self.method}")


def ties_head(model: nn.Module) -> bool:
    """Whether the model's output head is its token embedding (a tied configuration with a head)."""
    return bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False)) and \
        getattr(model, "lm_head", None) is not None


def quantize_embedding(model: nn.Module, quantizer: object, stats: object = None, *,
                       runnable: bool = True) -> tuple[QuantEmbedding, nn.Module | None]:
    """Replace the model's input embedding by a :class:`QuantEmbedding` made by ``quantizer``
    (``stats``: calibration statistics for a calibrated one — the tied head's inputs), in row
    slices (:func:`~quanta.model.sources.stream.quantize_rows`); a tied output head becomes a
    ``QuantLinear`` on the same codes — with ``runnable=False`` (a model that will only be
    written, where a tied head is not stored) one with its shape and spec and no tensors.
    Returns (embedding, head)."""
    from quanta.model.runtime.qlinear import QuantLinear
    from quanta.model.sources.stream import quantize_rows

    qw = quantize_rows(quantizer, model, model.get_input_embeddings(), stats=stats, name="embedding")
    qe = QuantEmbedding.from_quantized(qw)
    tied = ties_head(model)
    model.set_input_embeddings(qe)
    head = None
    if tied and not runnable:
        head = QuantLinear(qe.embedding_dim, qe.num_embeddings, bits=qe.bits, group_size=qe.group_size,
                           method=qe.method, path="packed", padded_in=qe.padded_dim, sym=qe.sym)
        head.drop()
        model.lm_head = head
    elif tied:  # from the stored codes and float16 scales, exactly as a loaded folder rebuilds it
        head = QuantLinear.from_quantized(qe.quantized_weight(), keep=False)
        model.lm_head = head
    return qe, head


def tie_head(model: nn.Module, qe: QuantEmbedding, path: str | None = None) -> None:
    """Rebuild the output head from a loaded quantized embedding (a tied model); ``path``: its
    forward path (:meth:`QuantLinear.from_quantized`)."""
    from quanta.model.runtime.qlinear import QuantLinear

    model.lm_head = QuantLinear.from_quantized(qe.quantized_weight(), path=path, keep=False)
