"""One algorithm for numpy arrays and torch tensors.

The core's grid code is written once against the few array operations below. ``ops(x)``
returns the namespace for ``x``'s library; torch is imported only when a tensor arrives.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """True when ``x`` is a torch tensor (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


class _NumpyOps:
    name = "numpy"

    @staticmethod
    def asarray(x: Any, like: Any = None) -> np.ndarray:
        dtype = like.dtype if like is not None and np.issubdtype(like.dtype, np.floating) else None
        return np.asarray(x, dtype=dtype)

    @staticmethod
    def float_dtype(x: np.ndarray) -> Any:
        return x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64

    @staticmethod
    def to_float(x: Any) -> np.ndarray:
        x = np.asarray(x)
        return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)

    @staticmethod
    def amax(x: np.ndarray, axis: int) -> np.ndarray:
        return x.max(axis=axis, keepdims=True)

    @staticmethod
    def amin(x: np.ndarray, axis: int) -> np.ndarray:
        return x.min(axis=axis, keepdims=True)

    @staticmethod
    def sum(x: np.ndarray, axis: int) -> np.ndarray:
        return x.sum(axis=axis, keepdims=True)

    abs = staticmethod(np.abs)
    round = staticmethod(np.rint)
    where = staticmethod(np.where)
    moveaxis = staticmethod(np.moveaxis)

    @staticmethod
    def clip(x: np.ndarray, lo: Any, hi: Any) -> np.ndarray:
        return np.clip(x, lo, hi)

    @staticmethod
    def at_least(x: np.ndarray, v: float) -> np.ndarray:
        return np.maximum(x, v)

    @staticmethod
    def tiny(x: np.ndarray) -> float:
        return float(np.finfo(x.dtype).tiny)

    @staticmethod
    def code_dtype(bits: int, signed: bool) -> Any:
        width = 8 if bits <= 8 else 16 if bits <= 16 else 32
        return np.dtype(f"{'int' if signed else 'uint'}{width}")

    @staticmethod
    def astype(x: np.ndarray, dtype: Any) -> np.ndarray:
        return x.astype(dtype)

    @staticmethod
    def broadcast(p: Any, shape: tuple[int, ...], like: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(p, dtype=_NumpyOps.float_dtype(like)), shape).copy()

    @staticmethod
    def numel(x: np.ndarray) -> int:
        return x.size


class _TorchOps:
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def asarray(self, x: Any, like: Any = None) -> Any:
        t = self.torch
        if like is not None:
            return t.as_tensor(x, dtype=like.dtype if like.is_floating_point() else None,
                               device=like.device)
        return t.as_tensor(x)

    def float_dtype(self, x: Any) -> Any:
        return x.dtype if x.is_floating_point() else self.torch.float32

    def to_float(self, x: Any) -> Any:
        return x if x.is_floating_point() else x.to(self.torch.float32)

    def amax(self, x: Any, axis: int) -> Any:
        return x.amax(dim=axis, keepdim=True)

    def amin(self, x: Any, axis: int) -> Any:
        return x.amin(dim=axis, keepdim=True)

    def sum(self, x: Any, axis: int) -> Any:
        return x.sum(dim=axis, keepdim=True)

    def abs(self, x: Any) -> Any:
        return x.abs()

    def round(self, x: Any) -> Any:
        return self.torch.round(x)

    def where(self, c: Any, a: Any, b: Any) -> Any:
        t = self.torch
        a = a if isinstance(a, t.Tensor) else t.as_tensor(a, dtype=b.dtype, device=b.device)
        b = b if isinstance(b, t.Tensor) else t.as_tensor(b, dtype=a.dtype, device=a.device)
        return t.where(c, a, b)

    def moveaxis(self, x: Any, src: int, dst: int) -> Any:
        return self.torch.movedim(x, src, dst)

    def clip(self, x: Any, lo: Any, hi: Any) -> Any:
        return self.torch.clamp(x, lo, hi)

    def at_least(self, x: Any, v: float) -> Any:
        return x.clamp_min(v)

    def tiny(self, x: Any) -> float:
        return float(self.torch.finfo(x.dtype).tiny)

    def code_dtype(self, bits: int, signed: bool) -> Any:
        t = self.torch
        # torch lacks arithmetic on wide unsigned types: unsigned codes above 8 bits take the
        # next signed type that holds them (int32 up to 16 bits, int64 above).
        if signed:
            return t.int8 if bits <= 8 else t.int16 if bits <= 16 else t.int32
        return t.uint8 if bits <= 8 else t.int32 if bits <= 16 else t.int64

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def broadcast(self, p: Any, shape: tuple[int, ...], like: Any) -> Any:
        return self.asarray(p, like=like).expand(shape).clone()

    def numel(self, x: Any) -> int:
        return x.numel()


_NUMPY = _NumpyOps()
_TORCH: _TorchOps | None = None


def ops(x: Any) -> Any:
    """The operations namespace for ``x`` (numpy unless ``x`` is a torch tensor)."""
    global _TORCH
    if is_torch(x):
        if _TORCH is None:
            _TORCH = _TorchOps()
        return _TORCH
    return _NUMPY
