"""Generation: greedy equals Hugging Face ``generate``, sampling is seeded, text streams whole
characters, chat templates render in a sandbox, and the CLI streams, prints JSON and refuses
bad settings in one line."""

from __future__ import annotations

import io
import json

import pytest
import torch

from quanta.cli.main import main
from quanta.errors import ConfigError, InputError
from quanta.model.runtime.generate import TextStream, generate_ids, pick, render_chat
from quanta.model.sources.tiny import BOS, EOS, byte_tokenizer, tiny_llama
from tests.model.conftest import write_tiny_gguf

CHAT = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant:{% endif %}")


def test_greedy_equals_hugging_face_generate():
    m = tiny_llama(seed=3)
    prompt = [BOS, 72, 101, 108, 108, 111]
    ours, why, _, _, _ = generate_ids(m, prompt, max_tokens=20, temperature=0, stop={EOS})
    with torch.no_grad():
        hf = m.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, eos_token_id=EOS,
                        pad_token_id=EOS)[0, len(prompt):].tolist()
    assert ours == hf
    assert why == ("eos" if ours[-1] == EOS else "max_tokens")


def test_sampling_is_seeded():
    m = tiny_llama(seed=4)
    prompt = [BOS, 1, 2, 3]
    a = generate_ids(m, prompt, max_tokens=16, temperature=1.0, top_p=1.0, seed=5)[0]
    b = generate_ids(m, prompt, max_tokens=16, temperature=1.0, top_p=1.0, seed=5)[0]
    c = generate_ids(m, prompt, max_tokens=16, temperature=1.0, top_p=1.0, seed=6)[0]
    assert a == b and a != c


def test_pick_follows_temperature_and_nucleus():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.0, float(torch.log(torch.tensor(3.0))), -20.0])
    draws = [pick(logits, 1.0, 1.0, gen) for _ in range(4000)]
    share = draws.count(1) / len(draws)
    assert abs(share - 0.75) < 0.03  # softmax: 3/4 on token 1
    assert {pick(logits, 1.0, 0.5, gen) for _ in range(200)} == {1}  # the nucleus holds token 1 only
    assert pick(logits, 0.0, 0.9, gen) == 1


def test_a_stop_token_ends_the_generation():
    m = tiny_llama(seed=3)
    prompt = [BOS, 5, 6]
    first = generate_ids(m, prompt, max_tokens=1, temperature=0)[0][0]
    new, why, _, _, _ = generate_ids(m, prompt, max_tokens=10, temperature=0, stop={first})
    assert new == [first] and why == "eos"
    with pytest.raises(ConfigError, match="top-p"):
        generate_ids(m, prompt, top_p=0.0)


def test_stream_holds_back_half_a_character():
    from quanta.model.sources.tiny import bytes_to_unicode

    tok = byte_tokenizer()
    b2u = bytes_to_unicode()
    out: list[str] = []
    s = TextStream(tok, out.append)
    for b in "aé".encode():  # é is two bytes, two tokens
        s(tok.token_to_id(b2u[b]))
    assert out == ["a", "é"]


def test_chat_templates_render_in_a_sandbox():
    assert render_chat(CHAT, "hi") == "<s>user: hi\n<s>assistant:"
    with pytest.raises(InputError, match="chat template"):
        render_chat("{{ ''.__class__.__mro__[1].__subclasses__() }}", "hi")


@pytest.fixture(scope="module")
def chat_gguf(tmp_path_factory):
    return write_tiny_gguf(tiny_llama(seed=2), tmp_path_factory.mktemp("chat") / "chat.gguf",
                           chat_template=CHAT)


def test_cli_generates_json_and_streams(chat_gguf, capsys, monkeypatch):
    args = ["model", "generate", str(chat_gguf), "hello", "--max-tokens", "6", "--temperature", "0"]
    assert main([*args, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert 1 <= rep["generated_tokens"] <= 6 and rep["prompt_tokens"] == 6  # BOS + 5 bytes
    assert rep["decode_tokens_per_s"] >= 0 and rep["prefill_tokens_per_s"] > 0
    assert main(args) == 0  # streamed: the same text, then the speed on stderr
    cap = capsys.readouterr()
    assert cap.out == rep["text"] + "\n" and "tokens/s" in cap.err
    monkeypatch.setattr("sys.stdin", io.StringIO("hello"))
    assert main([*args[:3], "-", *args[4:], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["token_ids"] == rep["token_ids"]


def test_cli_chat_uses_the_models_template(chat_gguf, tiny, capsys):
    assert main(["model", "generate", str(chat_gguf), "hi", "--chat", "--max-tokens", "2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["prompt_tokens"] == 2 + len("user: hi\n") + len("assistant:")  # each <s> is one token
    _, plain = tiny
    assert main(["model", "generate", str(plain), "hi", "--chat"]) == 2  # no template in that file
    assert "chat template" in capsys.readouterr().err


def test_a_quanta_folder_keeps_the_chat_template(chat_gguf, tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["model", "quantize", str(chat_gguf), "-o", str(out), "--method", "rtn", "--json"]) == 0
    capsys.readouterr()
    assert main(["model", "generate", str(out), "hi", "--chat", "--max-tokens", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["generated_tokens"] >= 1


@pytest.mark.parametrize("flags,words", [(["--top-p", "0"], "--top-p"),
                                          (["--temperature", "-1"], "--temperature"),
                                          (["--max-tokens", "0"], "--max-tokens")])
def test_cli_refuses_bad_settings_in_one_line(chat_gguf, capsys, flags, words):
    assert main(["model", "generate", str(chat_gguf), "hi", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_cli_needs_a_prompt_and_a_causal_model(chat_gguf, capsys):
    assert main(["model", "generate", str(chat_gguf)]) == 2
    assert "PROMPT" in capsys.readouterr().err
    assert main(["model", "generate", "minilm", "hi"]) == 2
    assert "encoder" in capsys.readouterr().err


def test_cli_says_which_decode_path_ran(chat_gguf, capsys):
    base = ["model", "generate", str(chat_gguf), "hi", "--max-tokens", "4", "--temperature", "0", "--verbose"]
    assert main(base) == 0
    fast = capsys.readouterr()
    assert "decode path: native kernels" in fast.err  # a GGUF file: quanta's compiled kernels
    assert main([*base, "--eager"]) == 0
    eager = capsys.readouterr()
    assert "decode path: eager (asked for)" in eager.err and eager.out == fast.out
