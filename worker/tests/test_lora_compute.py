"""The request's lora_compute (train/lora_compute.py; issue 22): the LoRA path in the base's bf16 over fp32
master weights. On tiny SDXL and FLUX.1 denoisers (bench/gpu_speed_configs.py TINY, built as bench/gpu-speed.py
builds them), CPU, one torch thread: a no-op bit for bit over an fp32 base; within bf16 tolerance of peft's
fp32 path over a bf16 base, with fp32 parameters and gradients and no fp32 copies of the adapted layers' inputs."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import train  # noqa: E402
from loraspec_worker.train import lora_compute  # noqa: E402
from loraspec_worker.train.dev_request import dev_config  # noqa: E402
import bench_script  # noqa: E402

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import gpu_profile  # noqa: E402
from gpu_speed_configs import EAGER  # noqa: E402

gpu_speed = bench_script.load("gpu-speed.py")

RANK = 5  # no tiny width or id shape is 5: the profile tells the LoRA's weights apart by it
MODELS = ["sdxl", "flux1"]


def adapted(model: str, dtype, lora_compute_mode: str = "fp32"):
    """The tiny denoiser with a LoRA (B random, so the LoRA path is not zero), fp32 LoRA params, its arch's loss."""
    arch = gpu_speed.ARCH_OF[model]
    cfg = dev_config(base="random", arch=arch, rank=RANK, alpha=RANK, guidance_scale=3.5)
    pipe = gpu_speed.build(model, torch.device("cpu"), dtype, tiny=True)
    a = train.ARCH_CLASSES[arch](pipe, cfg, torch.device("cpu"), dtype)
    net = a.denoiser
    net.requires_grad_(False)
    train.add_lora(net, cfg, cfg.targets)
    g = torch.Generator().manual_seed(5)
    params = [p for p in net.parameters() if p.requires_grad]
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.requires_grad and "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    for p in params:
        p.data = p.data.float()
    n = lora_compute.apply(net, lora_compute_mode)
    latents, text, extra = gpu_speed.inputs(model, 1, torch.device("cpu"), tiny=True)
    return SimpleNamespace(arch=a, net=net, params=params, n=n, batch=(latents, text, extra))


def loss_and_grads(m, seed: int = 3):
    for p in m.params:
        p.grad = None
    latents, text, extra = m.batch
    loss = m.arch.loss(latents, text, extra, torch.Generator().manual_seed(seed))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in m.params]


@pytest.mark.parametrize("model", MODELS)
def test_over_an_fp32_base_the_lever_is_a_no_op_bit_for_bit(model, one_thread):
    ref = adapted(model, torch.float32)
    lever = adapted(model, torch.float32, "bf16")
    assert ref.n == 0 and lever.n > 0
    loss_a, grads_a = loss_and_grads(ref)
    loss_b, grads_b = loss_and_grads(lever)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b))


@pytest.mark.parametrize("model", MODELS)
def test_over_a_bf16_base_the_lora_matches_the_fp32_path_within_bf16_tolerance(model, one_thread):
    from peft.tuners.lora.layer import Linear as LoraLinear

    ref = adapted(model, torch.bfloat16)
    lever = adapted(model, torch.bfloat16, "bf16")
    # One adapted layer's LoRA output (B A x scaled) against fp32 arithmetic on the same bf16 input.
    layer_ref = next(m for m in ref.net.modules() if isinstance(m, LoraLinear))
    layer = next(m for m in lever.net.modules() if isinstance(m, LoraLinear))
    x = torch.randn(2, 7, layer.in_features, generator=torch.Generator().manual_seed(9)).bfloat16()
    with torch.no_grad():
        exact = layer_ref(x).float() - layer_ref.base_layer(x).float()
        delta = layer(x).float() - layer.base_layer(x).float()
        assert layer(x).dtype == torch.bfloat16
    assert (delta - exact).norm() / exact.norm() < 2e-2
    # The whole loss and the gradients: bf16 tolerance; parameters and gradients stay fp32.
    loss_a, grads_a = loss_and_grads(ref)
    loss_b, grads_b = loss_and_grads(lever)
    assert abs(float(loss_b) / float(loss_a) - 1) < 2e-2
    assert all(p.dtype == torch.float32 for p in lever.params) and all(g.dtype == torch.float32 for g in grads_b)
    cos = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in grads_a]), torch.cat([g.flatten() for g in grads_b]), dim=0)
    assert cos > 0.99


@pytest.mark.parametrize("model", MODELS)
def test_the_profile_shows_no_fp32_copies_of_the_adapted_layers_inputs(model, one_thread):
    from torch.profiler import ProfilerActivity, profile

    counts = {}
    for mode in ("fp32", "bf16"):
        m = adapted(model, torch.bfloat16, mode)
        loss_and_grads(m)  # warm
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            loss_and_grads(m)
        counts[mode] = gpu_profile.summarize(prof, 1, RANK, on="cpu")["cast_calls_per_step"]
        layers = sum(1 for x in m.net.modules() if hasattr(x, "lora_A"))
    # peft's path: each adapted layer's input cast to fp32 and its output back (forward), their gradients (backward)
    assert counts["fp32"]["lora_weight"] == 0
    assert counts["fp32"]["other"] - counts["bf16"]["other"] >= 4 * layers
    # the lever casts the tiny weights instead (A and B forward, their gradients back to fp32)
    assert counts["bf16"]["lora_weight"] >= 4 * layers


def test_dora_keeps_the_fp32_path(one_thread):
    arch = "flux1"
    cfg = dev_config(base="random", arch=arch, rank=RANK, alpha=RANK, network_type="dora")
    pipe = gpu_speed.build("flux1", torch.device("cpu"), torch.bfloat16, tiny=True)
    net = train.ARCH_CLASSES[arch](pipe, cfg, torch.device("cpu"), torch.bfloat16).denoiser
    train.add_lora(net, cfg, cfg.targets)
    assert lora_compute.apply(net, "bf16") == 0


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="lora_compute"):
        lora_compute.apply(torch.nn.Linear(2, 2), "fp16")


@pytest.mark.parametrize("model", MODELS)
def test_a_short_bf16_run_s_loss_curve_stays_within_tolerance_of_fp32_compute(model, one_thread):
    """bench/gpu-speed.py's own run_config (the trainer's path: dev_config's lora_compute, setup.lora_compute_for),
    8 AdamW steps at lr 1e-4 on a bf16 base, then its loss check against the fp32-LoRA twin."""
    args = SimpleNamespace(steps=8, warmup=2, rank=RANK, tiny=True, targets="attention", profile=0)
    base = dict(EAGER, ckpt=False, batch=1)
    cpu = torch.device("cpu")
    fp32 = gpu_speed.run_config(model, "eager", base, args, cpu, torch.bfloat16, {})
    bf16 = gpu_speed.run_config(model, "eager + LoRA bf16", dict(base, lora_bf16=True), args, cpu, torch.bfloat16, {})
    check = gpu_speed.loss_check(bf16["losses"], fp32["losses"])
    assert bf16["levers"] == ["lora_bf16"]
    assert check["loss_mean_rel_diff"] < 5e-3 and check["loss_max_rel_diff"] < 2e-2, check


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from loraspec_worker import tiny_base
    from noise_dataset import write_noise_dataset

    root = tmp_path_factory.mktemp("lora-compute")
    return {"base": tiny_base.make_tiny_base("sdxl", str(root / "sdxl"), seed=0),
            "dataset": write_noise_dataset(root / "data", 3, (40, 48), "a photo of txcl, sample {i}", name="img{i}")}


def _bf16_on_cpu(monkeypatch):
    """The trainer's bf16 base on the CPU (which otherwise refuses bf16 precision for speed, not correctness)."""
    from loraspec_worker.train import loop

    monkeypatch.setattr(loop, "choose_dtype", lambda cfg, device: torch.bfloat16)


def _train(tiny_run, out, lora_compute_mode, **over):
    from loraspec_worker.train.dev_request import dev_request

    fields = dict(arch="sdxl", base=tiny_run["base"], dataset=tiny_run["dataset"], output_dir=str(out), resolution=32, steps=6, rank=4,
                  alpha=4, learning_rate=1e-2, seed=7, save_every=3, max_sequence_length=32, lora_compute=lora_compute_mode)
    return train.run(dev_request(**{**fields, **over}))


def test_the_trainer_saves_the_same_keys_and_dtypes_and_resumes_with_bf16_lora_compute(tiny_run, tmp_path, events, monkeypatch, one_thread):
    from safetensors.torch import load_file

    _bf16_on_cpu(monkeypatch)
    fp32 = _train(tiny_run, tmp_path / "fp32", "fp32")
    n = len(events())
    straight = _train(tiny_run, tmp_path / "bf16", "bf16")
    evs = events()[n:]
    applied = next(e for e in evs if e["type"] == "settings")["applied"]
    assert applied["lora_compute"] == "bf16" and applied["precision"] == "bf16"
    assert any(e["type"] == "log" and "LoRA compute in bf16" in e["message"] for e in evs)
    straight_losses = [e["loss"] for e in evs if e["type"] == "loss"]
    fp32_losses = [e["loss"] for e in events()[:n] if e["type"] == "loss"]
    rel = [abs(x / y - 1) for x, y in zip(straight_losses, fp32_losses)]
    print("trainer bf16-vs-fp32 LoRA compute, per-step loss rel. diff:", rel)
    assert len(rel) == 6 and max(rel) < 2e-2  # lr 1e-2 for 6 steps: the LoRA moves the loss, bf16 rounding must not
    a, b = load_file(fp32["path"]), load_file(straight["path"])
    assert sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape for k in a)
    # resume: 3 steps, stop, 3 more from the checkpoint: the straight run's curve
    _train(tiny_run, tmp_path / "resumed", "bf16", debug={"stop_after_step": 3})
    n = len(events())
    _train(tiny_run, tmp_path / "resumed", "bf16", resume_from="latest")
    resumed = [e["loss"] for e in events()[n:] if e["type"] == "loss"]
    assert resumed == pytest.approx(straight_losses[3:], rel=1e-3)


def test_bf16_lora_compute_over_an_fp32_base_applies_fp32_with_its_code(tiny_run, tmp_path, events, one_thread):
    _train(tiny_run, tmp_path, "bf16", steps=1, save_every=0)
    assert next(e for e in events() if e["type"] == "settings")["applied"]["lora_compute"] == "fp32"
    code = train.config.TABLE["refusals"]["lora_compute"]
    assert code == "W_LORA_COMPUTE_UNAVAILABLE"
    assert any(e["type"] == "warning" and e.get("code") == code and "the base runs in fp32" in e["message"] for e in events())


def test_fp32_lora_compute_over_an_fp32_base_says_nothing(tiny_run, tmp_path, events, one_thread):
    _train(tiny_run, tmp_path, "fp32", steps=1, save_every=0)
    assert not any(e.get("code") == train.config.TABLE["refusals"]["lora_compute"] for e in events())


def test_bf16_lora_compute_with_another_precision_is_a_usage_error():
    from loraspec_worker.protocol import WorkerError

    with pytest.raises(WorkerError, match="lora_compute bf16 with precision fp16"):
        dev_config(arch="sdxl", precision="fp16", lora_compute="bf16")


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_regional_compile_traces_the_bf16_lora_and_matches_eager(backend, one_thread):
    """speed.compile_blocks over the lever (inductor: the trainer's backend, ~100 s on one CPU thread; needs a C++ compiler)."""
    import os
    import shutil

    from loraspec_worker import speed

    if backend == "inductor" and shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("inductor on the CPU needs a C++ compiler")
    eager = adapted("flux1", torch.bfloat16, "bf16")
    loss_e, grads_e = loss_and_grads(eager)
    torch._dynamo.reset()
    try:
        compiled = adapted("flux1", torch.bfloat16, "bf16")
        assert speed.compile_blocks(compiled.net, backend=backend) > 0
        loss_c, grads_c = loss_and_grads(compiled)
    finally:
        torch._dynamo.reset()
    assert abs(float(loss_c) / float(loss_e) - 1) < 1e-2
    assert all(g.dtype == torch.float32 for g in grads_c)
    cos = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in grads_e]), torch.cat([g.flatten() for g in grads_c]), dim=0)
    assert cos > 0.99


def test_sample_merge_reads_the_same_fp32_a_and_b_under_the_lever(one_thread):
    """train/sample_merge.py merges B @ A from the fp32 parameters whatever the LoRA computes in: a merged render
    matches the bf16 LoRA path within bf16 rounding."""
    from loraspec_worker.train import sample_merge

    m = adapted("sdxl", torch.bfloat16, "bf16")
    latents, text, extra = m.batch
    with torch.no_grad():
        lora_path = float(m.arch.loss(latents, text, extra, torch.Generator().manual_seed(4)))
        merged = sample_merge.MergedLora(m.net)
        with merged.merged():
            on_merged = float(m.arch.loss(latents, text, extra, torch.Generator().manual_seed(4)))
    assert not merged.failed and len(merged.layers) == m.n
    assert abs(on_merged / lora_path - 1) < 1e-2
