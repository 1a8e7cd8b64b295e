"""What is stored: weight formats and the files that hold them.

:mod:`weight` (each storage format: block layout, exact bytes, grid; the GGML types from gguf-py's
table) → :mod:`stored` (a quantized weight as kernel-neutral folder tensors) → :mod:`folder`
(a quanta folder written and read; format-1 folders in :mod:`folder_v1`) and
:mod:`gguf_export` (a GGUF of quanta's values, through :mod:`gguf_rewrite`, which rewrites a
GGUF tensor by tensor). Reading: :mod:`gguf_header` (metadata only, fast) and :mod:`gguf_read`
(a GGUF as a float model). :mod:`integrity` checks the digests quanta writes into both.
"""
