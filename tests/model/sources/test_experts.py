"""A mixture's experts split one Linear per expert (:mod:`quanta.model.sources.experts`):
transformers' fused model is the oracle; every expert gets statistics from every token.
Random weights: plumbing, never quality."""

from __future__ import annotations

import pytest
import torch

from quanta.model.quantize.calibrate import block_inputs, block_stats, find_blocks
from quanta.model.sources.experts import SplitExperts, every_token, split_experts
from quanta.model.sources.load import load_model
from quanta.model.sources.tiny import tiny_model, write_hf_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_hf_folder(tmp_path_factory.mktemp("moe") / "hf", seed=3, family="qwen3_moe")


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_split_experts_give_transformers_fused_models_logits(folder):
    from transformers import AutoModelForCausalLM

    fused = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert fused.model.layers[0].mlp.experts.gate_up_proj.ndim == 3  # transformers' own layout
    ids = torch.tensor([[256, *range(30, 90)], [256, *range(100, 160)]])
    from quanta.model.sources.stream import load

    for stream in (False, True):
        ours = load_model(folder, stream=stream).model
        load(ours, "")  # (a streamed model reads its weights when asked: here all of them)
        experts = ours.model.layers[0].mlp.experts
        assert isinstance(experts, SplitExperts) and len(experts) == 8
        assert isinstance(experts[3].down_proj, torch.nn.Linear)
        torch.testing.assert_close(_logits(ours, ids), _logits(fused, ids), rtol=1e-5, atol=1e-5)
    # the split model's parameters carry the checkpoint's names, and split again is a no-op
    m = tiny_model("qwen3_moe", seed=3, hidden=128)
    assert "model.layers.1.mlp.experts.7.up_proj.weight" in dict(m.named_parameters())
    assert split_experts(m) is m


def test_every_token_feeds_every_expert_and_keeps_the_blocks_output(folder):
    """Statistics mode: each expert's layers see every token of the block's input; the output
    (the routed experts, weighted) is the one the model computes."""
    model = load_model(folder).model
    ids = torch.tensor([[256, *range(30, 70)]])
    seen: dict[str, int] = {}
    experts = model.model.layers[1].mlp.experts
    hooks = [lin.register_forward_pre_hook(lambda _m, a, n=f"{e}.{k}": seen.__setitem__(n, a[0].shape[0]))
             for e, ex in enumerate(experts) for k, lin in (("gate", ex.gate_proj), ("down", ex.down_proj))]
    routed = _logits(model, ids)
    routed_seen = dict(seen)
    seen.clear()
    with every_token(model):
        assert experts.every_token
        everything = _logits(model, ids)
    assert not experts.every_token  # switched off again
    for h in hooks:
        h.remove()
    torch.testing.assert_close(everything, routed, rtol=1e-5, atol=1e-5)
    tokens = ids.shape[1]
    assert all(seen[f"{e}.{k}"] == tokens for e in range(8) for k in ("gate", "down"))
    # routed: each token visits 2 of 8 experts
    assert sum(routed_seen.get(f"{e}.gate", 0) for e in range(8)) == 2 * tokens


def test_an_expert_the_router_never_chooses_still_gets_statistics(folder):
    """A router that sends every token to experts 0 and 1 leaves 2–7 with no token at all: the
    engine's statistics still count every token for each of them (a full-rank Hessian to round
    with), not zero."""
    model = load_model(folder).model
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.gate.weight.zero_()
            layer.mlp.gate.weight[:2] = 1.0  # experts 0 and 1 score highest for positive inputs
            layer.input_layernorm.weight.fill_(1.0)
    _, blocks = find_blocks(model)
    calib = torch.tensor([[256, *range(30, 62)], [256, *range(62, 94)]])
    inputs, kwargs = block_inputs(model, blocks[0], calib)
    layers = [(n, m) for n, m in blocks[0].named_modules() if isinstance(m, torch.nn.Linear)]
    stats = block_stats(blocks[0], layers, inputs, kwargs, hessian=True)
    tokens = calib.numel()
    for e in range(8):
        for k in ("gate_proj", "down_proj"):
            st = stats[f"mlp.experts.{e}.{k}"]
            assert st.n == tokens and float(st.hessian.diagonal().min()) > 0, (e, k)
