"""Storage formats (issue 22, deliverable 2): one class answers every byte-size question, and
its answer is the bytes actually written — a quanta folder's tensors, a GGUF file's blocks."""

from __future__ import annotations

import pytest
import torch

from quanta.model.formats.gguf_export import pack_blocks
from quanta.model.formats.weight import BLOCK_TYPES, EMBEDDING_ROWS, gguf_formats, quanta_formats
from quanta.model.quantize.quantizers import quantizer_for
from quanta.model.runtime.qlinear import QuantLinear


def _stored_bytes(ql: QuantLinear) -> int:
    """The bytes a quanta folder stores for a layer (its kernel-neutral tensors)."""
    return sum(v.numel() * v.element_size() for v in ql.disk_state().values())


@pytest.mark.parametrize("rows,cols", [(64, 256), (96, 512), (40, 96)])
def test_a_quanta_formats_size_is_the_bytes_its_layer_stores(rows, cols):
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows))
    for fmt in [*quanta_formats(cols), EMBEDDING_ROWS]:
        ql = QuantLinear.from_quantized(quantizer_for("rtn", fmt).quantize(w), None)
        assert _stored_bytes(ql) == fmt.nbytes(rows, cols), fmt.label


def test_an_embeddings_size_is_the_bytes_it_stores():
    from quanta.model.formats.weight import embedding_formats
    from quanta.model.runtime.qembed import QuantEmbedding

    w = torch.randn(300, 64, generator=torch.Generator().manual_seed(1))
    for fmt in [EMBEDDING_ROWS, *embedding_formats()]:
        st = QuantEmbedding.from_quantized(quantizer_for("mse", fmt).quantize(w)).disk_state()
        assert sum(v.numel() * v.element_size() for v in st.values()) == fmt.nbytes(300, 64, embedding=True)


@pytest.mark.parametrize("cols", [256, 512])
def test_a_ggml_formats_size_is_the_bytes_of_its_packed_blocks(cols):
    rows = 8
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(cols))
    for fmt in gguf_formats(True, cols):
        qw = quantizer_for("rtn", fmt).quantize(w)
        zeros = qw.zeros if qw.zeros is not None else torch.zeros_like(qw.scales)
        packed = pack_blocks(qw.codes.numpy(), qw.scales.numpy(), zeros.numpy(), fmt.ggml)
        assert packed.nbytes == fmt.nbytes(rows, cols), fmt.label


def test_ggml_block_sizes_are_llama_cpps_own():
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    for name, t in BLOCK_TYPES.items():
        assert (t.block, t.type_size) == GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    assert not gguf_formats(True, 128)[-1].fits(100)  # a row that is no whole number of blocks


def test_formats_import_no_torch():
    import subprocess
    import sys

    code = "import sys, quanta.model.formats.weight; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "False"
