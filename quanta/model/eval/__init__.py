"""What quantization costs, measured.

:mod:`evaluate` (the perplexity protocol ``quanta-ppl/1``, KL divergence and top-1 agreement
against a reference, encoders' cosine) → :mod:`harness` (the reference computed once, then
each candidate scored — used by the CLI, the tour and the benches) → :mod:`tour` (the model part
of ``quanta tour``).
"""
