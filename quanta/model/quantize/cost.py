"""What a plan will cost: peak resident memory and wall time, predicted from the layout alone.

A first model, fitted on this project's measured runs (x86-64, 2 cores, 2026-12-05; SmolLM2,
134.5 M parameters, each a fresh ``quanta model quantize`` process: RTN folder 15.4 s / 1.78 GB,
RTN GGUF 20.3 s / 1.78 GB, the GPTQ default 227 s / 2.57 GB peak, as its own report measures
them). It holds for today's engine, which loads the whole model in float32; the streaming engine
of the next issue replaces the memory term. The figures are estimates, printed as such;
``bench/golden_smollm2.py`` prints them beside the measured ones.

* memory: the interpreter with torch and transformers (:data:`BASE_BYTES`), the float model and
  the copies of its weights made while loading and quantizing (:data:`BYTES_PER_PARAM`); for a
  calibrated method the cached inputs of one block (windows × tokens × hidden, float32, twice);
  for the sensitivity pass every layer's input second moments (float32 ``in × in``) and the
  embedding's squared gradients;
* time: start-up and imports, loading (:data:`LOAD_S_PER_PARAM`), rounding (per weight, by
  method), packing GGML blocks for a GGUF, and for calibrated methods the forward passes over
  the calibration tokens (2 flops per weight per token, at :data:`FLOPS` — plus 4 passes per
  sensitivity window when the formats are chosen by measured sensitivity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: resident bytes of a process that imported torch and transformers and read a tokenizer
BASE_BYTES = 420e6
#: resident bytes per source parameter: the float32 model, plus the copies made while loading
#: (a GGUF dequantized, then copied into the model) and quantizing (codes, scales, kernel layout)
BYTES_PER_PARAM = 10.1
#: start-up: interpreter, imports, reading the tokenizer
START_S = 2.5
#: seconds per parameter to load a source into a float model
LOAD_S_PER_PARAM = 50e-9
#: seconds per quantized weight to round, by method (calibrated methods add their passes)
ROUND_S_PER_WEIGHT = {"rtn": 50e-9, "mse": 150e-9, "nf4": 60e-9, "hqq": 400e-9, "imatrix": 150e-9,
                      "gptq": 150e-9, "awq": 400e-9, "awq+gptq": 400e-9}
#: seconds per quantized weight to pack GGML blocks (a GGUF output)
EXPORT_S_PER_WEIGHT = 45e-9
#: multiply-adds per second of the calibration passes on this machine's 2 cores (bf16/float32)
FLOPS = 34e9
#: windows of the sensitivity pass, and its cost in forward passes (forward + backward)
SENSITIVITY_WINDOWS, SENSITIVITY_PASSES = 16, 4


@dataclass(frozen=True)
class Cost:
    """Predicted peak resident memory (bytes) and wall time (seconds) of a command."""

    peak_bytes: int
    seconds: float


def predict(params: int, linear_params: int, quantized: int, hidden: int, method: str, *,
            calibrated: bool, sensitivity: bool, windows: int, tokens: int, gguf: bool = False,
            second_moments: int = 0, embedding: int = 0) -> Cost:
    """The cost of quantizing a model of ``params`` parameters, ``linear_params`` of them in the
    blocks' Linear layers, ``quantized`` of them rounded by ``method`` (``gguf``: into GGML
    blocks); ``calibrated``: the method reads ``windows`` × ``tokens`` calibration tokens;
    ``sensitivity``: the formats are chosen by a measured-sensitivity pass, which holds
    ``second_moments`` (Σ in² over the layers) float32 values and the ``embedding``'s squared
    gradients."""
    peak = BASE_BYTES + BYTES_PER_PARAM * params
    seconds = START_S + LOAD_S_PER_PARAM * params + ROUND_S_PER_WEIGHT.get(method, 150e-9) * quantized
    seconds += EXPORT_S_PER_WEIGHT * quantized if gguf else 0.0
    passes = 0
    if calibrated:
        peak += 2 * 4 * windows * tokens * hidden
        passes += windows * tokens
    if sensitivity:
        peak += 4 * (second_moments + embedding)
        passes += SENSITIVITY_PASSES * SENSITIVITY_WINDOWS * tokens
    seconds += 2 * linear_params * passes / FLOPS
    return Cost(int(peak), seconds)


def for_plan(layout: Any, entries: Any, method: str, *, calibrated: bool, sensitivity: bool,
             windows: int, tokens: int, gguf: bool = False) -> Cost:
    """:func:`predict` for a plan's tensors (:mod:`quanta.model.quantize.plan`)."""
    params = sum(math.prod(s.shape) for s in layout.tensors)
    linears = [s.shape for s in layout.tensors if s.role in ("attention", "mlp")]
    quantized = sum(math.prod(e.shape) for e in entries if e.method is not None)
    emb = next((s.shape for s in layout.tensors if s.role == "embedding"), (0, 0))
    return predict(params, sum(math.prod(s) for s in linears), quantized, emb[1], method,
                   calibrated=calibrated, sensitivity=sensitivity, windows=windows, tokens=tokens,
                   gguf=gguf, second_moments=sum(s[1] ** 2 for s in linears), embedding=math.prod(emb))


__all__ = ["Cost", "for_plan", "predict"]
