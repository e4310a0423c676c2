"""GPU-only: FLUX.1's samples merged per call (train/sample_merge_call.py) on CUDA with fp8_matmul (row-wise fp8
GEMMs, Hopper): the merged bf16 forward is as close to the fp32 forward over the same fp8 copies as today's path;
the state is left bit for bit; a tiny FLUX.1 run with compile and fp8 GEMMs samples merged with its loss curve
and compile report kept; and, at FLUX.1's real widths (one double and one single block, 4096 image + 512 text
tokens, the attention preset), what one block of a denoising step costs on the LoRA path and merged, printed
with the 19 + 38 block extrapolation (the lead's figure for a sample's denoise).

On the GPU machine: worker/.venv/bin/python -m pytest -q -s -m gpu worker/tests/test_sample_merge_flux_gpu.py
"""

from __future__ import annotations

import copy
import time

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import speed, train  # noqa: E402
from loraspec_worker.train import sample_merge  # noqa: E402
from loraspec_worker.train import samples as train_samples  # noqa: E402
from loraspec_worker.train.dev_request import dev_config  # noqa: E402
from loraspec_worker.train.sample_merge_call import CallMergedLora  # noqa: E402
from model_state import state  # noqa: E402
from test_sample_merge_flux import ALL_LINEAR, ATTENTION, dequantized_lora_path, inputs, lora_flux  # noqa: E402
from tiny_runs import tiny_run  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
CUDA = torch.device("cuda")
# FLUX.1 [dev]'s transformer widths (one block of each kind) and 1024x1024's tokens (64 x 64 packed latents, T5 at 512)
FLUX1 = {"in_channels": 64, "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
         "axes_dims_rope": [16, 56, 56]}
TOKENS = (4096, 512)


def _forward(net, dtype, merge=None):
    with torch.no_grad(), (merge.merged() if merge is not None else sample_merge.merged(None)):
        return net(**{k: v.to(CUDA) if torch.is_tensor(v) else v for k, v in inputs(dtype).items()})[0].float()


def _fp8_flux(targets):
    net = lora_flux(targets, dtype=torch.bfloat16).to(CUDA)
    speed.quantize_fp8_(net, CUDA, torch.bfloat16, matmul=True, fp8_base=False)
    return net


def test_the_merged_fp8_sample_on_cuda_is_as_close_as_todays_path_and_leaves_the_state():
    if speed.fp8_matmul_blockers(CUDA):
        pytest.skip("; ".join(speed.fp8_matmul_blockers(CUDA)))
    net = _fp8_flux(ALL_LINEAR)
    truth_net = copy.deepcopy(net).float()
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with dequantized_lora_path(truth_net):
            truth = _forward(truth_net, torch.float32)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
    before = state(net)
    today = _forward(net, torch.bfloat16)
    merged = _forward(net, torch.bfloat16, CallMergedLora(net))
    err_today, err_merged = (today - truth).abs().mean().item(), (merged - truth).abs().mean().item()
    print(f"mean |bf16 - fp32| on CUDA: today's fp8 path {err_today:.2e}, merged {err_merged:.2e}")
    assert err_merged <= 1.25 * err_today
    assert all(torch.equal(a.view(torch.uint8) if a.dtype.itemsize == 1 else a, b.view(torch.uint8) if b.dtype.itemsize == 1 else b)
               for a, b in zip(before.values(), state(net).values()))


@pytest.mark.parametrize("mode", ["per_call", "compiled"])
def test_a_compiled_fp8_run_samples_merged_and_trains_as_one_without_samples(mode, tmp_path, monkeypatch):
    """per_call: the samples merged, eagerly (no frame, graph or recompile added); compiled: the LoRA path through
    the inductor-compiled blocks (graphs of their own, no fallback). Either way the loss curve of the run without samples."""
    samples = {"every": 4, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 3.5, "first": False, "width": 64, "height": 64}

    def fresh_run(name, **over):  # each run's compile report counts its own graphs (Dynamo's caches are per process)
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        return tiny_run("flux1", tmp_path, name, monkeypatch, compile=True, fp8_matmul=True, precision="bf16", **over)

    _, on, events = fresh_run("on", samples=samples, sample_merge=mode)
    _, off, events_off = fresh_run("off")
    assert len(on) == 8 and on == off
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert bool([m for m in logs if m.startswith("sample merge:")]) is (mode == "per_call") and len([m for m in logs if m.startswith("samples at step")]) == 2
    assert not [e for e in events if e["type"] == "warning" and e.get("code") in (sample_merge.WARNING, train_samples.COMPILE_FALLBACK)]

    def graphs(evs):
        [report] = [e["message"] for e in evs if e["type"] == "log" and e["message"].startswith("torch.compile in this run:")]
        return int(report.split(" graphs")[0].rsplit(" ", 1)[-1])

    # per_call adds no graph; compiled adds the no_grad graphs of its own
    assert (graphs(events) > graphs(events_off)) is (mode == "compiled"), (graphs(events), graphs(events_off))
    assert graphs(events) >= graphs(events_off)


def _block_ms(net, dtype, merge, repeats=5) -> tuple[float, float]:
    """Mean CUDA-event ms of the double and of the single block in one eager no_grad forward."""
    times = {"double": [], "single": []}
    hooks = []
    for kind, block in (("double", net.transformer_blocks[0]), ("single", net.single_transformer_blocks[0])):
        marks = {}
        hooks.append(block.register_forward_pre_hook(lambda m, a, marks=marks: marks.__setitem__("start", torch.cuda.Event(enable_timing=True)) or marks["start"].record()))
        hooks.append(block.register_forward_hook(lambda m, a, o, marks=marks, kind=kind: times[kind].append((marks["start"], torch.cuda.Event(enable_timing=True)))
                                                 or times[kind][-1][1].record()))
    g = torch.Generator(device=CUDA).manual_seed(0)
    (img, txt), c = TOKENS, net.config
    x = {"hidden_states": torch.randn(1, img, c.in_channels, device=CUDA, generator=g, dtype=dtype),
         "encoder_hidden_states": torch.randn(1, txt, c.joint_attention_dim, device=CUDA, generator=g, dtype=dtype),
         "pooled_projections": torch.randn(1, c.pooled_projection_dim, device=CUDA, generator=g, dtype=dtype), "timestep": torch.tensor([0.5], device=CUDA, dtype=dtype),
         "img_ids": torch.zeros(img, 3, device=CUDA), "txt_ids": torch.zeros(txt, 3, device=CUDA), "guidance": torch.tensor([3.5], device=CUDA, dtype=dtype),
         "return_dict": False}
    try:
        with torch.no_grad(), (merge.merged() if merge is not None else sample_merge.merged(None)):
            for _ in range(repeats + 1):
                net(**x)
        torch.cuda.synchronize()
    finally:
        for h in hooks:
            h.remove()
    return tuple(sum(a.elapsed_time(b) for a, b in times[k][1:]) / repeats for k in ("double", "single"))


def test_at_flux1_widths_a_merged_block_is_faster_than_the_lora_path():
    """FLUX.1's widths (hidden 3072, 24 heads of 128, MLP 12288; 1 double + 1 single block), its attention
    preset over fp8_matmul's copies, 1024x1024's 4096 image + 512 text tokens: eager no_grad block times,
    today's path and merged, and the 19 x double + 38 x single extrapolation of a denoising step's blocks."""
    if speed.fp8_matmul_blockers(CUDA):
        pytest.skip("; ".join(speed.fp8_matmul_blockers(CUDA)))
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    net = FluxTransformer2DModel(patch_size=1, num_layers=1, num_single_layers=1, guidance_embeds=True, **FLUX1)
    net = net.to(CUDA, torch.bfloat16).requires_grad_(False)
    train.add_lora(net, dev_config(arch="flux1", rank=16, alpha=16), ATTENTION)
    for p in net.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    speed.quantize_fp8_(net, CUDA, torch.bfloat16, matmul=True, fp8_base=False)
    net.eval()
    today = _block_ms(net, torch.bfloat16, None)
    started = time.time()
    merged = _block_ms(net, torch.bfloat16, CallMergedLora(net))
    step = lambda t: 19 * t[0] + 38 * t[1]  # noqa: E731
    print(f"FLUX.1 widths, eager no_grad, ms per block (double, single): today {today[0]:.2f}, {today[1]:.2f}; merged {merged[0]:.2f}, {merged[1]:.2f}; "
          f"blocks of a denoising step ~{step(today):.0f} -> ~{step(merged):.0f} ms (20 steps: {20 * step(today) / 1e3:.2f} -> {20 * step(merged) / 1e3:.2f} s); "
          f"merged pass {time.time() - started:.1f} s")
    assert step(merged) < step(today)
