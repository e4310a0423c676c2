"""FLUX.1's samples with the LoRA merged per call (train/sample_merge_call.py) on the CPU, on the tiny FLUX.1
(the real diffusers transformer at small widths) with peft's LoRA, over a base in its own dtype and over
fp8_matmul's fp8 copies (speed.quantize_fp8_, the CPU build runs torch._scaled_mm): the merged forward against
the LoRA path, the ops a denoising step runs, the state it must leave as it found it (base weights, fp8 copies,
LoRA parameters, gradients, optimizer state, bit for bit), no recompile of the compiled blocks, and whole runs
whose loss curve and LoRA are those of a run without samples."""

from __future__ import annotations

import collections
import contextlib
import copy
import io
import json
import os

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from loraspec_worker import protocol, speed, tiny_base, train  # noqa: E402
from loraspec_worker.train import compile_cache, sample_merge  # noqa: E402
from loraspec_worker.train.dev_request import dev_config, dev_request  # noqa: E402
from loraspec_worker.train.sample_merge_call import CallMergedLora  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402
from model_state import assert_same, state, trained_one_step  # noqa: E402
from test_regional_compile import fresh_dynamo, tiny_flux, train_steps  # noqa: E402,F401

ATTENTION = train.TARGETS["flux1"]
ALL_LINEAR = [*ATTENTION, "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "single_transformer_blocks.*.proj_out", "norm1.linear",
              "norm1_context.linear", "norm.linear"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def lora_flux(targets=ATTENTION, fp8=False, dtype=torch.float32, b_scale=0.05):
    """The tiny FLUX.1 transformer (1 double, 1 single block) with the trainer's LoRA (fp32 parameters, the
    up-projections moved off zero), its block linears in fp8 copies with fp8_matmul's layout when `fp8`."""
    net = tiny_base.build_flux1(0).transformer.to(dtype)
    net.requires_grad_(False)
    train.add_lora(net, dev_config(arch="flux1", rank=4, alpha=4), targets)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.data = p.data.float()
                p.add_(torch.randn_like(p) * b_scale)
    if fp8:
        speed.quantize_fp8_(net, torch.device("cpu"), dtype, matmul=True, fp8_base=False)
    return net.eval()


def inputs(dtype=torch.float32, seed=2):
    g = torch.Generator().manual_seed(seed)
    return {"hidden_states": torch.randn(1, 64, 16, generator=g).to(dtype), "encoder_hidden_states": torch.randn(1, 8, 32, generator=g).to(dtype),
            "pooled_projections": torch.randn(1, 32, generator=g).to(dtype), "timestep": torch.tensor([0.6]).to(dtype),
            "img_ids": torch.randn(64, 3, generator=g), "txt_ids": torch.zeros(8, 3), "guidance": torch.tensor([3.5]).to(dtype), "return_dict": False}


def forward(net, dtype=torch.float32, merge=None):
    with torch.no_grad(), (merge.merged() if merge is not None else contextlib.nullcontext()):
        return net(**inputs(dtype))[0]


@contextlib.contextmanager
def dequantized_lora_path(net):
    """The reference for a merged fp8 sample: the LoRA path over the fp8 copies dequantized (Fp8Linear's own
    non-GEMM math, matmul off for the duration)."""
    layers = [m for m in net.modules() if type(m) is speed.fp8_linear_class()]
    was = [m.matmul for m in layers]
    for m in layers:
        m.matmul = False
    try:
        yield
    finally:
        for m, w in zip(layers, was):
            m.matmul = w


def ops(net, merge=None) -> collections.Counter:
    """The aten ops one forward dispatches from Python (views and other metadata ops left out)."""
    from torch.profiler import ProfilerActivity, profile

    meta = {"aten::as_strided", "aten::view", "aten::_unsafe_view", "aten::reshape", "aten::t", "aten::transpose", "aten::expand", "aten::detach",
            "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::split", "aten::chunk", "aten::permute", "aten::unbind",
            "aten::empty", "aten::empty_strided", "aten::resolve_conj", "aten::resolve_neg", "aten::result_type", "aten::to", "aten::contiguous",
            "aten::lift_fresh", "aten::alias", "aten::narrow", "aten::split_with_sizes", "aten::unflatten", "aten::flatten", "aten::item",
            "aten::_local_scalar_dense"}
    with torch.no_grad(), (merge.merged() if merge is not None else contextlib.nullcontext()), profile(activities=[ProfilerActivity.CPU]) as prof:
        net(**inputs())
    out: collections.Counter = collections.Counter()

    def walk(e):
        if e.name.startswith("aten::") and e.name not in meta:
            out[e.name] += 1
            return
        for c in e.cpu_children:
            walk(c)

    for e in prof.events():
        if e.cpu_parent is None:
            walk(e)
    return out


@pytest.mark.parametrize("targets", [ATTENTION, ALL_LINEAR], ids=["attention", "all-linear"])
def test_fp32_merged_per_call_is_the_lora_forward(targets, events):
    """A base in its own dtype: (W + s B A) x against W x + s B (A x), float32 rounding apart (measured max
    ~1e-6 on outputs of mean ~0.8); the LoRA path back, bit for bit, after."""
    net = lora_flux(targets)
    lora = forward(net)
    base = net.disable_adapters() or forward(net)
    net.enable_adapters()
    merge = CallMergedLora(net)
    merged = forward(net, merge=merge)
    assert len(merge.layers) == {8: 11, 17: 20}[len(targets)] and merge.plain == []
    assert (lora - base).abs().mean() > 1e-3  # the LoRA moves the output far beyond the tolerance
    torch.testing.assert_close(merged, lora, rtol=0, atol=1e-5)
    assert torch.equal(forward(net), lora) and not any("forward" in m.__dict__ for m in net.modules())
    [log] = [e["message"] for e in events() if e["type"] == "log" and e["message"].startswith("sample merge:")]
    assert "11 LoRA layers merged per call in float32, 0 other fp8 linears" in log or "20 LoRA layers" in log


@pytest.mark.parametrize("targets", [ATTENTION, ALL_LINEAR], ids=["attention", "all-linear"])
def test_with_fp8_matmul_a_sample_is_the_lora_forward_over_the_dequantized_copies(targets, events):
    """fp8_matmul keeps fp8 copies only: the merged sample equals the LoRA path over those copies dequantized
    (float32 rounding apart), and differs from today's path (fp8 GEMMs, activations quantized per call) by
    fp8 noise only. Every block linear, LoRA or not, runs as one F.linear: no fp8 GEMM, no activation
    quantization, no fp32 copy of an input."""
    net = lora_flux(targets, fp8=True)
    gemm = forward(net)
    with dequantized_lora_path(net):
        reference = forward(net)
    merge = CallMergedLora(net)
    merged = forward(net, merge=merge)
    torch.testing.assert_close(merged, reference, rtol=0, atol=1e-5)
    rel = float((merged - gemm).norm() / gemm.norm())
    assert 1e-4 < rel < 0.06, rel
    n_fp8 = sum(type(m) is speed.fp8_linear_class() for m in net.modules())
    assert len(merge.layers) + len(merge.plain) == n_fp8 == 20  # 14 in the double block, 6 in the single
    assert torch.equal(forward(net), gemm)
    before, after = ops(net), ops(net, merge)
    assert before["aten::_scaled_mm"] == n_fp8 and after["aten::_scaled_mm"] == 0 and after["aten::amax"] == 0 and after["aten::abs"] == 0
    assert after["aten::addmm"] == len(merge.layers) and after["aten::linear"] >= n_fp8
    print(f"aten ops per forward: {sum(before.values())} -> {sum(after.values())}")
    assert sum(before.values()) - sum(after.values()) >= 6 * n_fp8  # measured 7.7 per fp8 linear (attention preset)
    [log] = [e["message"] for e in events() if e["type"] == "log" and e["message"].startswith("sample merge:")]
    assert f"{len(merge.layers)} over fp8 copies, dequantized), {len(merge.plain)} other fp8 linears dequantized" in log


def test_in_bf16_the_merged_fp8_sample_is_as_close_to_the_weights_as_todays_path():
    """bf16 with fp8_matmul: against the float32 forward over the same fp8 copies with the same LoRA, the
    merged sample (bf16 GEMMs over the dequantized weights, W' rounded once to bf16) errs as little as today's
    path (fp8 GEMMs over per-call quantized activations, the LoRA added in fp32): measured 1.01x its mean error
    on the tiny FLUX.1, where bf16's rounding of every op dominates both; 1.25x allowed."""
    net = lora_flux(ALL_LINEAR, fp8=True, dtype=torch.bfloat16)
    truth_net = copy.deepcopy(net).float()  # the fp8 copies and scales as float32: the same values
    with dequantized_lora_path(truth_net):
        truth = forward(truth_net)
    today = forward(net, torch.bfloat16).float()
    merged = forward(net, torch.bfloat16, CallMergedLora(net)).float()
    err_today, err_merged = (today - truth).abs().mean().item(), (merged - truth).abs().mean().item()
    print(f"mean |bf16 - fp32|: today's fp8 path {err_today:.2e}, merged {err_merged:.2e}")
    assert err_merged <= 1.25 * err_today


def test_a_fresh_lora_merges_to_the_base_bit_for_bit():
    """Zero up-projections (a step-0 sample): W' is W exactly, in bf16 too."""
    net = lora_flux(ALL_LINEAR, dtype=torch.bfloat16, b_scale=0.0)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "lora_B" in n:
                p.zero_()
    assert torch.equal(forward(net, torch.bfloat16, CallMergedLora(net)), forward(net, torch.bfloat16))


def test_samples_leave_the_training_state_bit_for_bit_and_follow_the_lora():
    """After a training step over fp8 copies: merged samples leave every base buffer (fp8 copies, their
    scales), LoRA parameter, gradient and AdamW state as they were, and each sample merges the LoRA as it is."""
    net = lora_flux(ATTENTION, fp8=True).train()
    params, optimizer = trained_one_step(net, inputs())
    before = state(net, optimizer)
    merge = CallMergedLora(net)
    first = forward(net, merge=merge)
    assert_same(state(net, optimizer), before)
    assert not any("forward" in m.__dict__ for m in net.modules())
    with torch.no_grad():  # the optimizer moves the LoRA in place between samples
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    moved = state(net, optimizer)
    with dequantized_lora_path(net):
        reference = forward(net)
    second = forward(net, merge=merge)
    torch.testing.assert_close(second, reference, rtol=0, atol=1e-5)
    assert (second - first).abs().mean() > 1e-3
    assert_same(state(net, optimizer), moved)


def test_with_ema_the_sample_merges_the_shadow():
    from loraspec_worker.train.regularize import Ema

    net = lora_flux(ATTENTION, fp8=True)
    params = [p for p in net.parameters() if p.requires_grad]
    ema = Ema(params, 0.0)
    with dequantized_lora_path(net):
        shadow = forward(net)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    raw = state(net)
    with ema.applied(params):
        sampled = forward(net, merge=CallMergedLora(net))
    torch.testing.assert_close(sampled, shadow, rtol=0, atol=1e-5)
    assert_same(state(net), raw)


def test_a_layer_that_cannot_merge_keeps_the_lora_path_with_one_coded_warning(events):
    from peft import LoKrConfig

    from loraspec_worker.train.targets import peft_target_modules

    net = tiny_base.build_flux1(0).transformer
    net.requires_grad_(False)
    net.add_adapter(LoKrConfig(r=4, alpha=4, target_modules=peft_target_modules(ATTENTION)))
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    lora = forward(net)
    merge = CallMergedLora(net)
    assert torch.equal(forward(net, merge=merge), lora) and torch.equal(forward(net, merge=merge), lora)
    assert merge.failed and merge.layers is None
    assert [w["code"] for w in events() if w["type"] == "warning"] == [sample_merge.WARNING]


def test_a_sample_between_compiled_steps_recompiles_nothing(fresh_dynamo):
    """Compiled blocks (aot_eager on the CPU) over fp8_matmul's copies: a merged sample (force_eager, as
    train/samples.py renders) between training steps adds no frame, graph or recompile, and the steps after
    it lose as the steps of a run without it."""
    from loraspec_worker.train.samples import _eager

    def run(sample: bool):
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        arch = tiny_flux(2, 2)
        speed.quantize_fp8_(arch.denoiser, torch.device("cpu"), torch.float32, matmul=True, fp8_base=False)
        speed.compile_blocks(arch.denoiser, backend="aot_eager")
        losses = train_steps(arch)
        first = compile_cache.report()
        if sample:
            merge = CallMergedLora(arch.denoiser)
            arch.denoiser.eval()
            with _eager(), torch.no_grad(), merge.merged():
                arch.denoiser(**inputs())
            arch.denoiser.train()
        losses += train_steps(arch)
        return losses, first, compile_cache.report()

    plain, _, _ = run(False)
    losses, first, after = run(True)
    assert losses == plain
    assert (after["frames"], after["graphs"], after["recompiles"]) == (first["frames"], first["graphs"], first["recompiles"]), (first, after)


SAMPLES = {"every": 1, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 3.5, "first": True, "width": 32, "height": 32}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("flux-merge-run")
    return str(root / "base"), write_noise_dataset(root / "data", 2, (32, 32), "a photo of txcl, view {i}")


def run(tiny, out, samples=None, arch="flux1", **over):
    folder, data = tiny
    base = f"{folder}-{arch}"
    if not os.path.exists(base):
        tiny_base.make_tiny_base(arch, base, seed=0)
    buf = io.StringIO()
    old, protocol._out = protocol._out, buf
    try:
        result = train.run(dev_request(arch=arch, base=base, dataset=data, output_dir=str(out), resolution=32, steps=3, rank=4, alpha=4,
                                       learning_rate=1e-2, seed=7, optimizer="adamw", precision="fp32", max_sequence_length=32, samples=samples,
                                       **{"sample_merge": "per_call", **over}))
    finally:
        protocol._out = old
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    return result, [e["loss"] for e in events if e["type"] == "loss"], events


@pytest.mark.parametrize("over", [{}, {"fp8_matmul": True}, {"fp8_matmul": True, "ema_decay": 0.9}, {"arch": "flux2-klein", "fp8_matmul": True}],
                         ids=["bf16-base", "fp8-matmul", "fp8-matmul-ema", "klein-fp8-matmul"])
def test_a_run_with_merged_samples_trains_as_one_without_samples(tiny, tmp_path, over, monkeypatch):
    """FLUX.1 and FLUX.2 [klein], samples before every step (and the first): the loss curve and the saved LoRA
    are those of the run without samples, to the bit on the CPU; each sample renders merged, its log line
    timing the merge. (fp8_matmul on the CPU: the device check lifted; torch's CPU build runs the row-wise fp8 GEMM.)"""
    monkeypatch.setattr(speed, "fp8_matmul_blockers", lambda device: [])
    result, on, events = run(tiny, tmp_path / "on", SAMPLES, **over)
    _, off, _ = run(tiny, tmp_path / "off", None, **over)
    assert len(on) == 3 and on == off
    a, b = load_file(result["path"]), load_file(str(tmp_path / "off" / "lora.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any(m.startswith("fp8 base:") for m in logs) is bool(over.get("fp8_matmul"))
    [merge_log] = [m for m in logs if m.startswith("sample merge:")]
    assert "merged per call" in merge_log and ("over fp8 copies" in merge_log) is bool(over.get("fp8_matmul"))
    lines = [m for m in logs if m.startswith("samples at step")]
    assert len(lines) == 4 and all("(merge " in m and "pipeline " in m for m in lines), lines
    assert not [e for e in events if e["type"] == "warning" and e.get("code") == sample_merge.WARNING]
