"""A baseline JPEG (JFIF) encoder, written out stage by stage.

colour conversion (:mod:`color`) → chroma subsampling (:mod:`color`) → 8×8 DCT (:mod:`dct`) →
quantization on a core grid (:mod:`quantize`, tables in :mod:`tables`) → zigzag, DC
prediction, run-length and Huffman coding (:mod:`entropy`) → markers (:mod:`writer`).
:func:`encode` runs them all.
"""

from quanta.image.jpeg.encoder import encode

__all__ = ["encode"]
