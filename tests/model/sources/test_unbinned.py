import numpy as np

from quanta.model.sources.unbinned import block_scales, unbin_gguf


def test_every_weight_is_redrawn_inside_its_bin(tiny, tmp_path):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from tests.model.conftest import write_tiny_gguf

    model, _ = tiny
    q41 = write_tiny_gguf(model, tmp_path / "q41.gguf", "Q4_1")
    a = unbin_gguf(q41, tmp_path / "a.gguf", seed=0)
    b = unbin_gguf(q41, tmp_path / "b.gguf", seed=0)
    assert a.read_bytes() == b.read_bytes()
    src = {t.name: t for t in GGUFReader(q41).tensors}
    out = {t.name: t for t in GGUFReader(a).tensors}
    t = src["blk.0.ffn_up.weight"]
    d = block_scales(t)
    base = np.asarray(dequantize(t.data, t.tensor_type), np.float32).reshape(-1, 32)
    new = np.asarray(out["blk.0.ffn_up.weight"].data, np.float32).reshape(-1, 32)
    assert out["blk.0.ffn_up.weight"].tensor_type.name == "F32"
    gap = np.abs(new - base)
    assert np.all(gap <= d[:, None] / 2 + 1e-6) and gap.mean() > 0.2 * float(d.mean()) / 2
    np.testing.assert_array_equal(np.asarray(out["output_norm.weight"].data),
                                  np.asarray(src["output_norm.weight"].data))
