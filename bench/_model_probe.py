"""Child process for bench/model_eval.py: load one model, report its resident memory and speed.

    python bench/_model_probe.py MODEL DTYPE     (DTYPE: float32 | bfloat16 | as-is)

Prints one JSON line: RSS before and after loading (MB), the model's share (after − before),
peak RSS, prefill and decode tokens/s.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import transformers  # noqa: F401  (imported before the baseline reading)

from quanta.model.eval.evaluate import decode_speed, peak_rss_mb, rss_mb


def main() -> None:
    src, dtype = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    # every module the loaders use is imported before the baseline reading, so that "model
    # RSS" is the model's memory, not the loader's code
    import gguf  # noqa: F401
    import safetensors.torch  # noqa: F401
    import tokenizers  # noqa: F401
    from transformers import LlamaForCausalLM  # noqa: F401

    import quanta.model.formats.folder
    import quanta.model.formats.gguf_read  # noqa: F401
    from quanta.model.sources.load import load_model

    gc.collect()
    before = rss_mb()
    m = load_model(src).model
    if dtype != "as-is":
        m = m.to(getattr(torch, dtype))
    gc.collect()
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)  # return freed load-time buffers to the OS
    after = rss_mb()
    prompt = torch.arange(100, 164)[None]
    decode_speed(m, prompt, 8)  # warm-up
    tps = decode_speed(m, prompt, 64)
    with torch.inference_mode():
        x = torch.arange(1000, 1512)[None]
        import time

        m(x)
        t0 = time.perf_counter()
        m(x)
        prefill = 512 / (time.perf_counter() - t0)
    print(json.dumps({"model": src, "dtype": dtype, "rss_before_mb": before, "rss_after_mb": after,
                      "model_rss_mb": after - before, "peak_rss_mb": peak_rss_mb(),
                      "decode_tokens_per_s": tps, "prefill_tokens_per_s": prefill}))


if __name__ == "__main__":
    main()
