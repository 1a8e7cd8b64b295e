from pathlib import Path

import gguf
import numpy as np
import pytest

from quanta.model.formats.gguf_read import permute as _permute
from quanta.model.sources.tiny import bytes_to_unicode, tiny_llama

#: Llama 3's rotary scaling at a tiny model's sizes: at head_dim 32 and an original context of
#: 64 positions, a band of frequencies is interpolated (transformers' rope_parameters)
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


def write_tiny_gguf(model, path: Path, qtype: str = "F32", chat_template: str | None = None,
                    kinds: dict[str, str] | None = None) -> Path:
    """``model`` as a llama GGUF file, its matrices in ``qtype`` (gguf-py's quantizer) — or, a
    block's matrix whose kind (``attn_q``, ``ffn_up``, …) ``kinds`` names, in that lattice type
    (quanta's rounding and packer, whose bytes tests/model/formats/test_lattice.py checks against
    gguf-py's dequantizer)."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    from quanta.model.formats import lattice

    cfg = model.config
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)] + ["<s>", "</s>", "Ġt"]
    types = [1] * 256 + [3, 3, 1]
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ t"])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)
    if chat_template:
        w.add_chat_template(chat_template)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    q = GGMLQuantizationType[qtype]

    def add(name, arr):
        kind = (kinds or {}).get(name.split(".")[-2])
        if kind:
            packed = lattice.pack(*lattice.quantize(arr, kind), kind)
            w.add_tensor(name, packed, raw_dtype=GGMLQuantizationType[kind])
        elif q != GGMLQuantizationType.F32 and arr.ndim == 2 and arr.shape[1] % 32 == 0:
            w.add_tensor(name, quantize(arr, q), raw_dtype=q)
        else:
            w.add_tensor(name, np.ascontiguousarray(arr))

    add("token_embd.weight", sd["model.embed_tokens.weight"])
    add("output_norm.weight", sd["model.norm.weight"])
    # names from gguf-py's own map (what llama.cpp's converter uses), not from quanta's table:
    # this file is the independent oracle that quanta's GGUF reader and exporter are tested on
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for i in range(cfg.num_hidden_layers):
        for key in [k for k in sd if k.startswith(f"model.layers.{i}.")]:
            arr = sd[key]
            gg = tmap.get_name(key, try_suffixes=(".weight",)).split(".")[2]
            if gg == "attn_q":
                arr = _permute(arr, cfg.num_attention_heads)
            elif gg == "attn_k":
                arr = _permute(arr, cfg.num_key_value_heads)
            add(f"blk.{i}.{gg}.weight", arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    m = tiny_llama()
    path = write_tiny_gguf(m, tmp_path_factory.mktemp("tiny") / "tiny.gguf")
    return m, path


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory):
    """A seeded tiny Llama as a Hugging Face folder (safetensors, tokenizer)."""
    from quanta.model.sources.tiny import write_hf_folder

    return write_hf_folder(tmp_path_factory.mktemp("tiny-hf") / "tiny-llama", seed=0)
