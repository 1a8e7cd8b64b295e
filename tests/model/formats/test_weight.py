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


def test_the_symmetric_groups_of_32_and_the_iq4_nl_codebook_join_a_folders_grids():
    from quanta.model.formats.weight import NL4, default_formats, sym_groups

    def labels(fmts):
        return [f.label for f in fmts]

    # the codebook in place of the symmetric 4-bit grid (the same bytes) where the method takes it
    assert labels(sym_groups(4)) == ["5-bit g32 sym", "6-bit g32 sym", "8-bit g32 sym", "4-bit g32 nl"]
    assert labels(sym_groups(4, takes_levels=False)) == ["4-bit g32 sym", "5-bit g32 sym", "6-bit g32 sym",
                                                         "8-bit g32 sym"]
    assert labels(sym_groups(3)) == ["3-bit g32 sym", "5-bit g32 sym", "6-bit g32 sym", "8-bit g32 sym",
                                     "4-bit g32 nl"]
    assert labels(sym_groups(6)) == ["6-bit g32 sym", "8-bit g32 sym"]  # no 4-bit codebook above 4 bits
    assert sym_groups(4, width=16) == []
    assert NL4 in default_formats(4, 576) and NL4 not in default_formats(4, 576, takes_levels=False)
    assert NL4 in quanta_formats(576) and NL4 not in quanta_formats(576, takes_levels=False)
    # 4.5 bits per weight as llama.cpp's IQ4_NL and Q4_0, plus the 16 levels once per layer
    assert NL4.nbytes(64, 256) == BLOCK_TYPES["IQ4_NL"].nbytes(64 * 256) + 16 * 4
    assert NL4.codebook_type == "IQ4_NL" and sym_groups(4)[0].codebook_type is None


def test_a_method_that_cannot_round_onto_levels_refuses_the_codebook_grid():
    from quanta.errors import ConfigError
    from quanta.model.formats.weight import NL4

    with pytest.raises(ConfigError, match="4-bit g32 nl"):
        quantizer_for("hqq", NL4)


def test_a_family_the_compiled_kernels_do_not_run_keeps_pytorchs_kernel_grids():
    from quanta.model.arch import ARCHITECTURES
    from quanta.model.formats.weight import default_formats, embedding_formats, sym_groups

    assert ARCHITECTURES["llama"].compiled and ARCHITECTURES["qwen3"].compiled
    assert not ARCHITECTURES["gemma2"].compiled and not ARCHITECTURES["qwen3_moe"].compiled
    assert not ARCHITECTURES["bert"].compiled
    extra = {f.label for f in sym_groups(3)}
    assert not extra & {f.label for f in default_formats(4, 576, compiled=False)}
    assert not extra & {f.label for f in quanta_formats(576, compiled=False)}
    assert not extra & {f.label for f in embedding_formats(compiled=False)}
    assert "5-bit g32 sym" in {f.label for f in embedding_formats()}
