"""A JPEG (JFIF) encoder, baseline and progressive, written out stage by stage.

colour conversion (:mod:`color`) → chroma subsampling (:mod:`color`) → 8×8 DCT (:mod:`dct`) →
quantization on a core grid, nearest or by the trellis (:mod:`quantize`; tables in
:mod:`tables`, designed per image in :mod:`design`) → zigzag, DC prediction, run-length and
Huffman coding (:mod:`entropy`, :mod:`progressive`) → markers (:mod:`writer`). :func:`encode`
runs them all; :mod:`target` searches the tables' scale for a size, PSNR or SSIMULACRA2 target.
"""

from quanta.image.jpeg.encoder import encode

__all__ = ["encode"]
