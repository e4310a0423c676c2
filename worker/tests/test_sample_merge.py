"""Samples with the LoRA merged (train/sample_merge.py) on the CPU, on the tiny SDXL UNet (the real diffusers
class at small widths) with peft's LoRA: the merged forward against the LoRA path, the state it must leave
as it found it (base weights, LoRA parameters, gradients, optimizer state, bit for bit), the buffers recomputed
in place at every sample, the fall-backs, and whole runs whose loss curve and LoRA are those of a run
without samples."""

from __future__ import annotations

import contextlib
import io
import os

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from loraspec_worker import tiny_base, train  # noqa: E402
from loraspec_worker.train import sample_merge  # noqa: E402
from loraspec_worker.train.dev_request import dev_request  # noqa: E402
from loraspec_worker.train.targets import peft_target_modules  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402
from model_state import assert_same, state, trained_one_step  # noqa: E402
from tiny_lora_unet import ALL_LINEAR, ATTENTION, inputs, lora_unet  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def forward(unet, dtype=torch.float32, merge=None, seed=2):
    with torch.no_grad(), (merge.merged() if merge is not None else contextlib.nullcontext()):
        return unet(**inputs(dtype, seed))[0]


@pytest.mark.parametrize("targets", [ATTENTION, ALL_LINEAR], ids=["attention", "all-linear"])
def test_fp32_merged_forward_is_the_lora_forward(targets, events):
    """fp32: (W + s B A) x against W x + s B (A x): the same sums in another order, so the outputs differ by
    float32 rounding only (measured max 8e-7 on outputs of mean 0.23): 1e-5 leaves room for other CPUs' kernels."""
    unet = lora_unet(targets)
    lora = forward(unet)
    base = unet.disable_adapters() or forward(unet)
    unet.enable_adapters()
    merge = sample_merge.MergedLora(unet)
    merged = forward(unet, merge=merge)
    assert len(merge.layers) == {4: 32, 8: 48}[len(targets)]
    assert (lora - base).abs().mean() > 1e-3  # the LoRA moves the output far beyond the tolerance
    torch.testing.assert_close(merged, lora, rtol=0, atol=1e-5)
    [log] = [e["message"] for e in events() if e["type"] == "log" and e["message"].startswith("sample merge:")]
    assert f"{len(merge.layers)} LoRA layers" in log and "float32" in log


@pytest.mark.parametrize("b_scale", [1e-3, 1e-2, 1e-1])
def test_bf16_merged_forward_is_as_close_to_fp32_as_the_lora_path(b_scale):
    """bf16: W' is W + delta rounded to bf16 (as a merged file loaded in bf16), where the LoRA path adds the
    delta's product in fp32; both round every op of the UNet to bf16. Against the fp32 forward of the same
    (bf16-rounded) base with the same LoRA, the merged output must be as close as the LoRA path's own bf16
    output: measured 0.95-1.03x its mean error for LoRA effects of 0.3-9% of the output; 1.25x allowed."""
    unet = lora_unet(ALL_LINEAR, b_scale)
    for name, p in unet.named_parameters():
        if "lora_" not in name:
            p.data = p.data.bfloat16().float()
    truth = forward(unet)
    for name, p in unet.named_parameters():
        if "lora_" not in name:
            p.data = p.data.bfloat16()
    lora = forward(unet, torch.bfloat16).float()
    merged = forward(unet, torch.bfloat16, sample_merge.MergedLora(unet)).float()
    err_lora, err_merged = (lora - truth).abs().mean().item(), (merged - truth).abs().mean().item()
    print(f"b_scale {b_scale}: mean |bf16 - fp32| LoRA path {err_lora:.2e}, merged {err_merged:.2e}")
    assert err_merged <= 1.25 * err_lora


def test_a_fresh_lora_merges_to_the_base_bit_for_bit():
    """Zero up-projections (a step-0 sample): W' is W exactly, in bf16 too, so the base's own images."""
    unet = lora_unet(ALL_LINEAR, b_scale=0.0, dtype=torch.bfloat16)
    merge = sample_merge.MergedLora(unet)
    assert torch.equal(forward(unet, torch.bfloat16, merge), forward(unet, torch.bfloat16))
    assert all(torch.equal(x.merged, x.weight) for x in merge.layers)


def test_samples_leave_the_training_state_bit_for_bit_and_follow_the_lora_in_place():
    """After a training step: merged samples leave every base weight, LoRA parameter, gradient and AdamW
    state as they were; the buffers keep their addresses (a sample graph reads them) and each sample
    recomputes them from the LoRA as it is then; the LoRA path is back after each."""
    unet = lora_unet(ALL_LINEAR).train()
    params, optimizer = trained_one_step(unet, inputs())
    before = state(unet, optimizer)
    lora_before = forward(unet)
    merge = sample_merge.MergedLora(unet)
    first = forward(unet, merge=merge)
    addresses = [x.merged.data_ptr() for x in merge.layers]
    assert_same(state(unet, optimizer), before)
    assert torch.equal(forward(unet), lora_before)  # the LoRA path is back
    assert not any("forward" in m.__dict__ for m in unet.modules())

    with torch.no_grad():  # the optimizer moves the LoRA in place between samples
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    moved = state(unet, optimizer)
    lora_now = forward(unet)
    second = forward(unet, merge=merge)
    assert [x.merged.data_ptr() for x in merge.layers] == addresses
    torch.testing.assert_close(second, lora_now, rtol=0, atol=1e-5)
    assert (second - first).abs().mean() > 1e-3
    assert_same(state(unet, optimizer), moved)


def test_with_ema_the_sample_merges_the_shadow_and_the_raw_weights_come_back():
    """The loop renders inside Ema.applied: the buffers are recomputed from the shadow then, and the raw
    LoRA is back (bit for bit) after, as it is for a save."""
    from loraspec_worker.train.regularize import Ema

    unet = lora_unet(ATTENTION)
    params = [p for p in unet.parameters() if p.requires_grad]
    ema = Ema(params, 0.0)  # the shadow: the LoRA as it is now
    shadow_lora = forward(unet)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    raw = state(unet)
    merge = sample_merge.MergedLora(unet)
    with ema.applied(params):
        sampled = forward(unet, merge=merge)
    torch.testing.assert_close(sampled, shadow_lora, rtol=0, atol=1e-5)
    assert (forward(unet) - shadow_lora).abs().mean() > 1e-3  # the raw LoRA draws otherwise
    assert_same(state(unet), raw)


@pytest.mark.parametrize("mode, variant", [("buffers", "MergedLora"), ("per_call", "CallMergedLora"), ("none", None), ("compiled", None)])
@pytest.mark.parametrize("over", [{"arch": "sdxl"}, {"arch": "flux1", "fp8_matmul": True}, {"arch": "zimage", "network_type": "dora"}], ids=["sdxl", "flux1-fp8mm", "zimage-dora"])
def test_the_requests_sample_merge_picks_the_variant_whatever_the_run(mode, variant, over):
    """Core decides (plan/sample-merge.ts); the worker builds what the request names, over any arch and network
    type (a layer it cannot merge refuses at the first sample, below), and nothing for "none"."""
    from loraspec_worker.train.dev_request import dev_config

    made = sample_merge.make(dev_config(sample_merge=mode, **over).sample_merge, torch.nn.Linear(2, 2))
    assert (type(made).__name__ if made is not None else None) == variant
    with sample_merge.merged(None):
        pass


@pytest.mark.parametrize("value", ["per-call", "merged", None, True])
def test_a_sample_merge_the_schema_does_not_name_is_a_usage_error(value):
    from loraspec_worker.protocol import WorkerError

    with pytest.raises(WorkerError) as err:
        train.parse_config(dev_request(arch="sdxl", base="b", dataset="d", output_dir="o") | {"sample_merge": value})
    assert err.value.code == "E_USAGE" and "field sample_merge:" in err.value.message


def test_the_fp8_base_fallback_turns_the_merge_off():
    """After an OOM, quantize_base holds the base in fp8: core's merge was chosen for a base in its own dtype."""
    from loraspec_worker.train import runner
    from loraspec_worker.train.dev_request import dev_config

    cfg = dev_config(arch="flux1", sample_merge="per_call")
    assert runner.apply_fallback(cfg, "quantize_base") == "held the base in fp8 (and samples on the LoRA path, not merged)"
    assert (cfg.quantize, cfg.sample_merge) == ("fp8", "none")
    cfg = dev_config(arch="sdxl")
    assert runner.apply_fallback(cfg, "quantize_base") == "held the base in fp8" and cfg.sample_merge == "none"


@pytest.mark.parametrize("kind", ["dora", "lokr", "loha"])
def test_a_layer_that_cannot_merge_keeps_the_lora_path_with_one_coded_warning(kind, events):
    """Should another adapter kind reach the merge (core keeps them off it), the samples keep the LoRA path,
    the same output bit for bit, warned once, and no buffer is made."""
    from peft import LoHaConfig, LoKrConfig, LoraConfig

    modules = peft_target_modules(ATTENTION)
    config = {"dora": LoraConfig(r=4, lora_alpha=4, target_modules=modules, use_dora=True), "lokr": LoKrConfig(r=4, alpha=4, target_modules=modules),
              "loha": LoHaConfig(r=4, alpha=4, target_modules=modules)}[kind]
    unet = lora_unet(config=config)
    for p in unet.parameters():  # non-zero adapters: their effect shows
        if p.requires_grad:
            with torch.no_grad():
                p.add_(torch.randn_like(p) * 0.05)
    lora = forward(unet)
    merge = sample_merge.MergedLora(unet)
    assert torch.equal(forward(unet, merge=merge), lora) and torch.equal(forward(unet, merge=merge), lora)
    assert merge.failed and merge.layers is None
    assert [(w["code"], "keep the LoRA path" in w["message"]) for w in events() if w["type"] == "warning"] == [(sample_merge.WARNING, True)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge-run")
    return tiny_base.make_tiny_base("sdxl", str(root / "base"), seed=0), write_noise_dataset(root / "data", 2, (32, 32), "a photo of txcl, view {i}")


SAMPLES = {"every": 1, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 2.0, "first": True, "width": 32, "height": 32}


def run(tiny, out, samples=None, **over):
    base, data = tiny
    buf = io.StringIO()
    from loraspec_worker import protocol

    old, protocol._out = protocol._out, buf
    try:
        result = train.run(dev_request(arch="sdxl", base=base, dataset=data, output_dir=str(out), resolution=32, steps=3, rank=4, alpha=4,
                                       learning_rate=1e-2, seed=7, optimizer="adamw", precision="fp32", samples=samples,
                                       **{"sample_merge": "buffers", **over}))
    finally:
        protocol._out = old
    import json

    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    return result, [e["loss"] for e in events if e["type"] == "loss"], events


@pytest.mark.parametrize("over", [{}, {"ema_decay": 0.9}, {"train_text_encoder": True}], ids=["plain", "ema", "text-encoder-lora"])
def test_a_run_with_merged_samples_trains_as_one_without_samples(tiny, tmp_path, over):
    """Samples before every step (and the first): the loss curve and the saved LoRA are those of the run
    without samples, to the bit on the CPU; each sample renders merged, its log line timing the merge."""
    result, on, events = run(tiny, tmp_path / "on", SAMPLES, **over)
    _, off, _ = run(tiny, tmp_path / "off", None, **over)
    assert len(on) == 3 and on == off
    a, b = load_file(result["path"]), load_file(str(tmp_path / "off" / "lora.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [e["message"] for e in events if e["type"] == "log"]
    merges = [m for m in logs if m.startswith("sample merge:")]
    assert len(merges) == 1 and merges[0].startswith("sample merge: 32 LoRA layers")  # the UNet's only, also with a text-encoder LoRA
    lines = [m for m in logs if m.startswith("samples at step")]
    assert len(lines) == 4 and all("(merge " in m and "denoise " in m and "decode " in m and "png queue " in m for m in lines), lines
    assert not [e for e in events if e["type"] == "warning" and e.get("code") == sample_merge.WARNING]


def test_merged_samples_draw_the_lora_paths_images(tiny, tmp_path):
    """fp32 on the CPU: the PNGs rendered merged are the LoRA path's to within one level of 255."""
    import numpy as np
    from PIL import Image

    run(tiny, tmp_path / "merged", SAMPLES)
    _, _, events = run(tiny, tmp_path / "lora", SAMPLES, sample_merge="none")
    assert not [e for e in events if e["type"] == "log" and e["message"].startswith("sample merge:")]  # "none": the LoRA path
    names = sorted(os.listdir(tmp_path / "merged" / "samples"))
    assert names == sorted(os.listdir(tmp_path / "lora" / "samples")) and len(names) == 4
    for n in names:
        with Image.open(tmp_path / "merged" / "samples" / n) as a, Image.open(tmp_path / "lora" / "samples" / n) as b:
            diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
        assert diff.max() <= 1, (n, diff.max())


@pytest.mark.parametrize("compile_applied, want", [(True, "compiled"), (False, "per_call")])
def test_compiled_samples_render_per_call_where_the_run_does_not_compile(compile_applied, want, monkeypatch, tmp_path):
    """`compiled` needs the compiled blocks: where compile is refused (its own coded warning), the run applies core's
    sampleMerge.compiledFallback, says so in a log line and in the settings event's applied values; a run without
    samples keeps the request's value."""
    import io
    import json

    from loraspec_worker import protocol, schema_files
    from loraspec_worker.train import setup
    from loraspec_worker.train.dev_request import dev_config

    assert schema_files.builtin_trainer()["sampleMerge"]["compiledFallback"] == "per_call"
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    samples = {"every": 4, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 3.5, "first": False, "width": 64, "height": 64}
    cfg = dev_config(arch="flux1", sample_merge="compiled", samples=samples)
    assert setup.applied_sample_merge(cfg, {"compile": compile_applied}) == want
    logs = [json.loads(line)["message"] for line in buf.getvalue().splitlines()]
    assert logs == ([] if compile_applied else ["sample_merge compiled renders as per_call: this run does not compile the blocks"])
    assert setup.applied_sample_merge(dev_config(arch="flux1", sample_merge="compiled"), {"compile": False}) == "compiled"  # no samples
    assert setup.applied_sample_merge(dev_config(arch="flux1", sample_merge="per_call", samples=samples), {"compile": False}) == "per_call"
