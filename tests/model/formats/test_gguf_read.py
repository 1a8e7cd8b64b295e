import pytest
import torch

from quanta.errors import InputError
from quanta.model.formats.gguf_read import load_gguf


def test_tiny_gguf_round_trip_logits(tiny):
    model, path = tiny
    g = load_gguf(path)
    x = torch.tensor([[256, 5, 77, 100, 3, 9, 200, 150]])
    with torch.no_grad():
        torch.testing.assert_close(g.model(x).logits, model(x).logits, rtol=1e-4, atol=1e-4)
    assert g.tokenizer.encode("hi t").tokens[-1] == "Ġt"


def test_gguf_q8_0_written_by_gguf_package_loads(tiny, tmp_path):
    from tests.model.conftest import write_tiny_gguf

    model, _ = tiny
    q8 = write_tiny_gguf(model, tmp_path / "q8.gguf", "Q8_0")
    g = load_gguf(q8)
    assert "Q8_0" in g.tensor_types.values()
    x = torch.tensor([[256, 5, 77, 100, 3]])
    with torch.no_grad():
        a, b = g.model(x).logits, model(x).logits
    assert float((a - b).norm() / b.norm()) < 0.02


def test_bad_gguf_files(tmp_path, tiny):
    _, path = tiny
    with pytest.raises(InputError, match="no such file"):
        load_gguf(tmp_path / "none.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError):
        load_gguf(cut)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 100)
    with pytest.raises(InputError):
        load_gguf(junk)


