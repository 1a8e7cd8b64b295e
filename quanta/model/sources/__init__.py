"""Where float models come from, read safely.

:mod:`reading` (bundled models' paths, a model argument checked before anything is loaded,
bounded JSON/tokenizer reads; a leaf) → :mod:`load` (one entry point for GGUF files, quanta
folders and Hugging Face folders). Models made here: :mod:`unbinned` (SmolLM2 without its 4-bit
grid, for quality comparisons) and :mod:`tiny` (a seeded tiny Llama, the medium's example input).
"""
