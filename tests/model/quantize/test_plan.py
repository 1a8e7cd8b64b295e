"""The plan of ``quanta model quantize`` (issue 22, deliverable 3): made from metadata alone,
one ordered decision per tensor, the predicted size against the file the same command writes,
``--dry-run`` writing nothing, unknown architectures refused before any weight is read."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from quanta.cli.main import main
from quanta.errors import InputError
from quanta.model.options import Options
from quanta.model.quantize.plan import plan_for, read_layout


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    from quanta.model.sources.tiny import write_hf_folder

    return write_hf_folder(tmp_path_factory.mktemp("hf") / "tiny-llama", hidden=128)


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*")) if p.is_dir() else p.stat().st_size


def test_the_layout_comes_from_metadata_without_torch(tiny):
    import subprocess

    _, path = tiny
    code = (f"import sys; from quanta.model.quantize.plan import read_layout, plan_for; "
            "from quanta.model.options import Options; "
            f"l = read_layout({str(path)!r}); p = plan_for(l, Options()); "
            "print(len(l.tensors), l.tied, p.refine, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["20", "True", "default", "sharing", "False"]


def test_each_tensor_gets_one_format_and_a_reason(tiny):
    _, path = tiny
    plan = plan_for(read_layout(path), Options(method="rtn", exclude=("*.mlp.down_proj",)))
    by = {e.name: e for e in plan.entries}
    assert by["model.embed_tokens"].format == "8-bit row"
    assert by["model.layers.0.self_attn.q_proj"].format == "4-bit g64" and "groups of 64" in \
        by["model.layers.0.self_attn.q_proj"].reason
    assert by["model.layers.1.mlp.down_proj"].format == "float32" and "--exclude" in by[
        "model.layers.1.mlp.down_proj"].reason
    assert "lm_head" not in by  # tied: the embedding is the head
    gguf = plan_for(read_layout(path), Options(method="rtn", format="gguf"))
    assert gguf.kind == "Q4_1" and {e.format for e in gguf.entries if e.role == "embedding"} == {"Q8_0"}


@pytest.mark.parametrize("args,name", [(["--method", "rtn", "--uniform"], "q"),
                                       (["--method", "rtn", "--format", "gguf"], "q.gguf"),
                                       (["--method", "gptq", "--bits", "8", "--format", "gguf"], "q8.gguf")])
def test_the_predicted_size_is_the_written_size(tiny, tmp_path, capsys, args, name):
    _, path = tiny
    out = tmp_path / name
    assert main(["model", "quantize", str(path), "-o", str(out), "--dry-run", "--json", *args]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert not out.exists()  # a dry run writes nothing
    assert main(["model", "quantize", str(path), "-o", str(out), "--json", *args,
                 "--calib-samples", "4", "--calib-len", "32"]) == 0
    actual = _size(out)
    # exact but for metadata text (the config's and the headers' lengths): within 2 % on a model
    # this small, within 0.5 % on SmolLM2 (docs/BENCHMARKS.md)
    assert abs(plan["predicted_bytes"] - actual) / actual < 0.02, (plan["predicted_bytes"], actual)


def test_the_plain_default_and_a_target_spend_about_the_predicted_bytes(hf, tmp_path, capsys):
    for args in (["--method", "gptq"], ["--method", "rtn", "--target-bpw", "5"]):
        out = tmp_path / f"o{len(args)}"
        assert main(["model", "quantize", str(hf), "-o", str(out), "--dry-run", "--json", *args]) == 0
        plan = json.loads(capsys.readouterr().out)
        assert plan["refine"] in ("default sharing", "target")
        assert main(["model", "quantize", str(hf), "-o", str(out), *args, "--calib-samples", "4",
                     "--calib-len", "32"]) == 0
        capsys.readouterr()
        assert abs(_size(out) - plan["predicted_bytes"]) < 0.05 * plan["predicted_bytes"]


def test_an_unknown_architecture_is_refused_before_any_weight_is_read(hf, tmp_path, capsys):
    import shutil

    other = tmp_path / "gptneox"
    shutil.copytree(hf, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["architectures"] = ["GPTNeoXForCausalLM"]
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"GPTNeoXForCausalLM.*not supported"):
        read_layout(other)
    assert main(["model", "quantize", str(other), "-o", str(tmp_path / "out"), "--method", "rtn"]) == 2
    err = capsys.readouterr().err
    assert "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, " \
        "Phi3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM" in err and not (tmp_path / "out").exists()


def test_dry_run_prints_the_plan_as_a_table(tiny, capsys):
    _, path = tiny
    assert main(["model", "quantize", str(path), "-o", "unused", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "predicted size: about" in out and "shared out" in out and "norms stay float" in out


def test_the_final_plan_is_kept_in_the_output(hf, tiny, tmp_path):
    """A folder's config and a GGUF's ``quanta.plan`` keep the plan: each tensor's format, method
    and reason — the sensitivity pass's choices where it chose."""
    from gguf import GGUFReader

    from quanta.media import get

    rep = get("model").write(hf, tmp_path / "q", Options(calib_samples=8, calib_len=32))
    plan = json.loads((tmp_path / "q" / "quant_config.json").read_text())["plan"]
    layers = json.loads((tmp_path / "q" / "quant_config.json").read_text())["layers"]
    assert plan["refine"] == "default sharing" and plan["predicted_bytes"] > 0
    assert rep.planned_s > 0 and rep.planned_peak_mb > 0  # the estimates: in the report only
    for name, spec in layers.items():
        fmt, method, why = plan["tensors"][name]
        assert fmt == rep.mixed["map"][name] and fmt.startswith(f"{spec['bits']}-bit") and method == "gptq"
        assert "measured sensitivity" in plan["reasons"][why]
    assert plan["tensors"]["model.layers.0.input_layernorm.weight"][0] == "float32"
    _, path = tiny
    get("model").write(path, tmp_path / "q.gguf", Options(method="rtn", format="gguf"))
    kept = json.loads(GGUFReader(tmp_path / "q.gguf").fields["quanta.plan"].contents())
    assert kept["tensors"]["model.layers.1.mlp.down_proj"][:2] == ["Q4_1", "rtn"]


def test_the_plan_predicts_time_and_memory(hf):
    from quanta.model.quantize.cost import predict

    plain = plan_for(read_layout(hf), Options(method="rtn", uniform=True))
    calibrated = plan_for(read_layout(hf), Options())
    assert 0 < plain.cost.seconds < calibrated.cost.seconds
    assert plain.cost.peak_bytes < calibrated.cost.peak_bytes
    from quanta.model.quantize.cost import Shapes

    def llama(h: int, i: int, blocks: int, vocab: int) -> Shapes:
        lin = ((h, h), (h // 4, h), (h // 4, h), (h, h), (i, h), (i, h), (h, i))
        params = blocks * sum(o * k for o, k in lin) + vocab * h
        return Shapes(blocks, lin, (h, h, i, h), h, vocab, params, 2 * params, True, True)

    kw = {"calibrated": True, "sensitivity": True, "windows": 64, "tokens": 256, "speed": (3e11, 1.5e11)}
    small = predict(llama(576, 1536, 30, 49152), 9 * 10**7, 1.3 * 10**8, "gptq", **kw)
    big = predict(llama(2048, 8192, 16, 128256), 7.8 * 10**8, 1.2 * 10**9, "gptq", **kw)
    assert 5 < big.seconds / small.seconds < 30 and 1.2 < big.peak_bytes / small.peak_bytes < 4


def test_the_plan_measures_this_machine_at_the_models_width(hf, monkeypatch):
    """The speed probe is a product of the model's hidden width (held to 512…4096): narrow
    models' products run further from the machine's peak than the 1024-wide probe."""
    import quanta.model.quantize.plan as plan_mod
    from quanta.model.quantize.cost import machine_speed

    widths = []
    monkeypatch.setattr(plan_mod, "machine_speed", lambda w: widths.append(w) or (2e11, 1e11))
    plan_for(read_layout(hf), Options())
    plan_for(read_layout(hf), Options(method="rtn", uniform=True))  # not calibrated: no probe
    assert widths == [128]
    f32, f64 = machine_speed(128)
    assert f32 > 0 and f64 > 0 and machine_speed(128) == (f32, f64)  # measured once per width


def test_an_unknown_architecture_is_refused_without_torch(hf, tmp_path):
    """The refusal comes from the plan, before torch is imported (a fresh process: under a
    second, as bench/model_cli.py measures) and before any weight is read."""
    import shutil
    import subprocess

    other = tmp_path / "gptneox"
    shutil.copytree(hf, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(cfg | {"architectures": ["GPTNeoXForCausalLM"]}))
    code = ("import sys; from quanta.cli.main import main; "
            f"rc = main(['model', 'quantize', {str(other)!r}, '-o', {str(tmp_path / 'out')!r}]); "
            "print(rc, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split()[-2:] == ["2", "False"] and "GPTNeoXForCausalLM" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_max_memory_shrinks_the_slices_or_refuses():
    """--max-memory: the default slices when the predicted peak fits, else the largest smaller
    slices that fit, else a one-line refusal before any work."""
    from quanta.errors import ConfigError
    from quanta.model.quantize.cost import SLICE_BYTES, Cost
    from quanta.model.quantize.plan import SMALLER_SLICES, _fit_memory

    def cost_of(sb: int) -> Cost:  # a phase that holds three slices over a fixed base
        return Cost(10**9 + 3 * sb, 1.0)

    assert _fit_memory(Options(), cost_of)[1] == SLICE_BYTES
    assert _fit_memory(Options(max_memory=2 * 10**9), cost_of)[1] == SLICE_BYTES
    cost, sb = _fit_memory(Options(max_memory=10**9 + 3 * SMALLER_SLICES[1]), cost_of)
    assert sb == SMALLER_SLICES[1] and cost.peak_bytes <= 10**9 + 3 * sb
    with pytest.raises(ConfigError, match=r"--max-memory 1\.00 GB: this run needs about"):
        _fit_memory(Options(max_memory=10**9), cost_of)
    with pytest.raises(ConfigError, match="positive number of bytes"):
        Options(max_memory=0)
    assert "max_memory" not in Options(max_memory=10**9).run_settings()  # a resumed run may change it


def test_max_memory_from_the_cli(hf, tmp_path, capsys):
    """Refused in one line with exit code 2 and nothing written; a limit that fits writes the
    very bytes of a run without it, and --dry-run says the slices it chose."""
    out = tmp_path / "out"
    assert main(["model", "quantize", str(hf), "-o", str(out), "--max-memory", "100MB"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--max-memory 0.10 GB" in err and len(err.splitlines()) == 1 and not out.exists()
    args = ["model", "quantize", str(hf), "--method", "rtn", "--uniform", "--embedding-bits", "4"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b"), "--max-memory", "64GB"]) == 0
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "c"), "--max-memory", "64GB", "--dry-run"]) == 0
    assert "--max-memory 64.00 GB: the embedding and head read in 128 MB slices" in capsys.readouterr().out


def test_parked_layers_leave_the_predicted_peak():
    """Finished layers parked in the spill file (a quanta folder, a GGUF file) are not counted in
    the blocks' phase; a compressed-tensors folder, which holds them, is."""
    from quanta.model.quantize.cost import Shapes, predict

    h, i = 2048, 8192
    lin = ((h, h), (512, h), (512, h), (h, h), (i, h), (i, h), (h, i))
    sh = Shapes(16, lin, (h, h, i, h), h, 128256, 1_235_814_400, 2_471_628_800, True, True)
    kw = {"calibrated": True, "sensitivity": False, "windows": 64, "tokens": 256, "speed": (3e11, 1.5e11)}
    parked = predict(sh, 700_000_000, 973_000_000, "gptq", **kw)
    held = predict(sh, 700_000_000, 973_000_000, "gptq", parked=False, **kw)
    assert held.peak_bytes - parked.peak_bytes == pytest.approx(700_000_000, rel=0.01)
    floats = predict(sh, 700_000_000, 973_000_000, "gptq", floats=525_000_000, **kw)
    assert floats.peak_bytes > 4 * 525_000_000  # an untied head left float is read whole to be written
    # … but for a quanta folder, whose writer reads it a row slice at a time: the blocks stay the peak
    sliced = predict(sh, 700_000_000, 973_000_000, "gptq", floats=525_000_000, sliced=True, **kw)
    assert sliced.peak_bytes == parked.peak_bytes


def test_a_method_without_a_hessian_is_priced_without_gptqs_buffers():
    """``--method imatrix`` quantizes the embedding's slices without GPTQ's float64 buffers (its
    phase: the codes and a few float32 slices; GPTQ's: the slice and its buffers for ROW_CHUNK
    rows), but holds more float copies of a block than the engine's float block alone; a GGUF
    file's embedding blocks are counted when it is packed."""
    from quanta.model.quantize.cost import (
        BASE_BYTES,
        BLOCK_COPIES,
        EMB_CODE_BYTES,
        ROW_CHUNK,
        SLICE_COPIES,
        Shapes,
        predict,
    )

    h, i, v = 576, 1536, 49152
    lin = ((h, h), (192, h), (192, h), (h, h), (i, h), (i, h), (h, i))
    sh = Shapes(30, lin, (h, h, i, h), h, v, 134_515_008, 269_060_552, True, True)
    kw = {"calibrated": True, "sensitivity": False, "windows": 64, "tokens": 256, "speed": (3e11, 1.5e11)}
    gptq = predict(sh, 90_000_000, 134_000_000, "gptq", **kw)
    imatrix = predict(sh, 90_000_000, 134_000_000, "imatrix", hessian=False, **kw)
    # the embedding fits one slice: its codes and SLICE_COPIES float32 copies of it
    emb = v * h
    assert imatrix.peak_bytes == pytest.approx(BASE_BYTES + EMB_CODE_BYTES * emb + SLICE_COPIES * 4 * emb)
    # GPTQ: its float64 buffers for ROW_CHUNK rows of the slice at a time, not for the slice
    assert gptq.peak_bytes == pytest.approx(BASE_BYTES + 6 * emb + 4 * 8 * ROW_CHUNK * h + 8 * h * h)
    # a wide model: the blocks' phase, BLOCK_COPIES float blocks, is the peak
    h, i, v = 2048, 8192, 128256
    lin = ((h, h), (512, h), (512, h), (h, h), (i, h), (i, h), (h, i))
    wide = Shapes(16, lin, (h, h, i, h), h, v, 1_235_814_400, 2_471_628_800, True, True)
    q = 750_000_000
    got = predict(wide, q, 1_235_000_000, "imatrix", hessian=False, gguf=True, emb_bytes=215_000_000, **kw)
    block = 4 * wide.block_params
    assert got.peak_bytes == pytest.approx(BASE_BYTES + BLOCK_COPIES * block + q / 16 + 2 * 4 * 64 * 256 * h)
    # a large quantized embedding makes the packing the peak
    big = predict(wide, q, 1_235_000_000, "imatrix", hessian=False, gguf=True, emb_bytes=2_000_000_000, **kw)
    assert big.peak_bytes > BASE_BYTES + EMB_CODE_BYTES * v * h + 2_000_000_000


def test_the_embeddings_reason_names_a_tied_head_only_when_there_is_one(hf, tmp_path):
    from quanta.model.sources.tiny import write_hf_folder

    untied = write_hf_folder(tmp_path / "untied", hidden=128, tie_word_embeddings=False)
    for folder, tied in ((hf, True), (untied, False)):
        layout = read_layout(folder)
        assert layout.tied is tied
        emb = next(e for e in plan_for(layout, Options()).entries if e.role == "embedding")
        assert emb.format == "8-bit row" and ("tied head" in emb.reason) is tied, emb.reason


def test_plan_for_plans_with_the_options_the_command_runs_with(tmp_path):
    """A llama.cpp preset quantizes an untied head (:func:`options_for`): ``plan_for`` on the
    bare options gives the plan the command and its ``--dry-run`` give."""
    from quanta.model.quantize.plan import options_for
    from quanta.model.sources.tiny import write_hf_folder

    layout = read_layout(write_hf_folder(tmp_path / "untied", hidden=256, tie_word_embeddings=False))
    opts = Options(type="Q4_K_M", format="gguf", uniform=True, method="imatrix")
    bare, resolved = plan_for(layout, opts), plan_for(layout, options_for(layout, opts))
    head = next(e for e in bare.entries if e.role == "head")
    assert head.method is not None, head
    assert bare == resolved


def test_a_mixtures_cost_counts_block_0s_experts_and_routes_the_propagation(tmp_path):
    """A mixture's plan prices its statistics pass over every expert (each sees every token) and
    the pass through the quantized block over the routed ones (k of E): the time is below the
    all-experts figure; block 0's layers are its own (expert 0 of block 1 is not block 0's)."""
    import dataclasses

    from quanta.model.quantize.cost import predict, shapes_of
    from quanta.model.sources.tiny import write_hf_folder

    layout = read_layout(write_hf_folder(tmp_path / "moe", seed=1, family="qwen3_moe"))
    assert (layout.experts, layout.experts_used) == (8, 2)
    sh = shapes_of(layout)
    attention = 256 * 128 + 128 * 128 + 128 * 128 + 128 * 256
    experts = 8 * 3 * 128 * 128
    assert len(sh.linears) == 4 + 8 * 3 and sh.block_params == attention + experts
    assert sh.routed_params == attention + experts // 4
    args = dict(calibrated=True, sensitivity=False, windows=64, tokens=256, speed=(1e11, 5e10))
    routed = predict(sh, 10**6, 10**6, "gptq", **args).seconds
    dense = predict(dataclasses.replace(sh, routed=0), 10**6, 10**6, "gptq", **args).seconds
    assert routed < dense


def test_the_plain_calibrated_gguf_default_is_llama_cpps_q4_0_with_types_by_sensitivity(tiny):
    """--format gguf --bits 4 (5) with a calibrated method and nothing else: the file of --type
    Q4_0 (Q5_0) — no larger than llama.cpp's, each tensor's type chosen by its sensitivity, as
    the plain default shares a quanta folder's bytes out; anything more said keeps the uniform file."""
    from quanta.model.quantize.plan import default_type, options_for

    _, path = tiny
    layout = read_layout(path)
    plain = plan_for(layout, Options(format="gguf"))
    preset = plan_for(layout, Options(type="Q4_0", format="gguf"))
    assert plain.refine == "target" and plain.kind == "Q4_0" and plain.budget_bytes == preset.budget_bytes
    assert [(e.name, e.format) for e in plain.entries] == [(e.name, e.format) for e in preset.entries]
    assert options_for(layout, Options(format="gguf", bits=5, method="imatrix")).type == "Q5_0"
    for kept in (Options(format="gguf", uniform=True), Options(format="gguf", method="rtn"),
                 Options(format="gguf", sym=True), Options(format="gguf", group_size=32),
                 Options(format="gguf", bits=8), Options(format="gguf", target_bpw=5.0), Options()):
        assert default_type(kept) is None, kept
    uniform = plan_for(layout, Options(format="gguf", uniform=True))
    assert uniform.refine is None and uniform.kind == "Q4_1"


def test_a_lattice_preset_prices_its_lattice_search_in_the_plans_time(tmp_path, monkeypatch):
    """``--type IQ3_S``: the plan counts the lattice search of the tensors it puts in IQ3_S and,
    mixed, the pricing of every unit whose rows fit in each lattice type; ``--type Q4_K_M``'s
    sensitivity pass does not price them."""
    from quanta.model.quantize.cost import LATTICE_PRICE_S_PER_WEIGHT, LATTICE_S_PER_WEIGHT
    from quanta.model.quantize.plan import lattice_offered, options_for, plan_for, read_layout
    from quanta.model.sources.tiny import tiny_model
    from tests.model.conftest import write_tiny_gguf

    src = write_tiny_gguf(tiny_model("llama", hidden=256), tmp_path / "wide.gguf")
    layout = read_layout(src)

    def seconds(**kw) -> float:
        return plan_for(layout, options_for(layout, Options(format="gguf", **kw))).cost.seconds

    uniform = plan_for(layout, options_for(layout, Options(format="gguf", type="IQ3_S", uniform=True)))
    in_lattice = sum(math.prod(e.shape) for e in uniform.entries if e.format == "IQ3_S")
    assert in_lattice > 0
    k = plan_for(layout, options_for(layout, Options(format="gguf", type="Q3_K_S", uniform=True)))
    assert uniform.cost.seconds - k.cost.seconds == pytest.approx(LATTICE_S_PER_WEIGHT * in_lattice, rel=0.05)
    assert lattice_offered(Options(format="gguf", type="IQ3_S"))
    assert lattice_offered(Options(format="gguf", target_bpw=3.0), 3 * 1000 // 8, 1000)
    assert not lattice_offered(Options(format="gguf", target_bpw=4.5), 45 * 1000 // 80, 1000)
    assert not lattice_offered(Options(format="gguf", type="Q4_K_M"), 5 * 1000 // 8, 1000)
    assert not lattice_offered(Options(format="quanta"), 1000 // 8, 1000)
    priced = LATTICE_PRICE_S_PER_WEIGHT * in_lattice
    assert seconds(type="IQ3_S") > seconds(type="IQ3_S", uniform=True) + priced
    # a size target's budget decides as the command does (under 4 bits per unit weight): the
    # plan's time counts the pricing for a small --target-size and for --target-bpw alike
    small, large = int(uniform.predicted_bytes * 0.8), int(uniform.predicted_bytes * 3)
    assert seconds(target_size=small) > seconds(target_size=large) + priced
    assert seconds(target_size=small) == pytest.approx(seconds(target_bpw=3.0), rel=0.05)
    # large units are priced on a sample of rows (quanta.model.quantize.pricing.priced_rows): with
    # a cap of one row's weights, the pricing's time all but vanishes from the plan's
    from quanta.model.formats.weight import BLOCK_TYPES
    from quanta.model.quantize import pricing

    kinds = [t for t in BLOCK_TYPES.values() if t.lattice]
    mixed_plan = plan_for(layout, options_for(layout, Options(format="gguf", type="IQ3_S")))
    whole = LATTICE_PRICE_S_PER_WEIGHT * sum(math.prod(e.shape) * sum(t.fits(e.shape[-1]) for t in kinds)
                                             for e in mixed_plan.entries if e.method)
    before = seconds(type="IQ3_S")
    monkeypatch.setattr(pricing, "LATTICE_PRICE_WEIGHTS", 256)
    assert before - seconds(type="IQ3_S") > 0.9 * whole > 0
