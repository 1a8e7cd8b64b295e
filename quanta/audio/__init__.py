"""quanta.audio — requantize audio to any bit depth with dither and noise shaping, and measure it.

Built on :mod:`quanta.core`: grids (full scale 1.0 ↔ 2**(N-1) codes), dither sources and the
error-feedback kernel. This package adds file I/O, noise-shaping filters (classic and designed
for any sample rate), streaming, analysis and a signal generator.
"""
