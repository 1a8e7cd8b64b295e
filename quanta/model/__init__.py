"""quanta.model — quantize neural-network weights, run them on the CPU, and measure the cost.

A ``quanta model quantize`` runs, in order:

read the source's layout, no weight touched (:mod:`.quantize.plan`, with :mod:`.arch` naming the
family's tensors) → the plan: per tensor a format and a method, with the predicted bytes, memory
and time (:mod:`.quantize.plan`, :mod:`.quantize.cost`; formats from :mod:`.formats.weight`,
methods from :mod:`.quantize.methods`) → load the float model (:mod:`.sources.load`) →
calibration windows and per-layer statistics (:mod:`.quantize.calibrate`, AWQ folds in
:mod:`.quantize.awq`) → mixed precision refines the plan (:mod:`.quantize.mixed`, under a budget
in :mod:`.quantize.recipe`) → each layer rounded by its method (:mod:`.quantize.quantizers`,
driven by :mod:`.quantize.apply`) into layers that run (:mod:`.runtime.qlinear`,
:mod:`.runtime.qembed`) → written as a quanta folder (:mod:`.formats.folder`, tensors laid out by
:mod:`.formats.stored`) or a GGUF (:mod:`.formats.gguf_export`).

Subpackages, one role each:

- :mod:`.formats` — what is stored and how files are laid out: the weight formats, the folder,
  GGUF read and write, checksums.
- :mod:`.sources` — where float models come from: bundled models, argument checks, one loader.
- :mod:`.quantize` — how weights are rounded and the plan that decides it.
- :mod:`.runtime` — what runs: quantized layers, the decode paths, generation.
- :mod:`.eval` — what it costs: perplexity, KL divergence, the one evaluation harness, the tour.

:mod:`.medium` is the model's side of the media contract; :mod:`.arch` the architecture tables;
:mod:`.reports` the weight figures every model report carries.
"""
