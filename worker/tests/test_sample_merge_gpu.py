"""GPU-only: SDXL's sample graph (train/sample_graph.py) replays the merged forward (train/sample_merge.py) on
CUDA, bf16 base: the replay is the eager merged forward, as close to the fp32 forward as the LoRA path's own
bf16 output is, and after the LoRA moves in place the next sample's refreshed buffers are what the same graph
replays (no recapture); a tiny SDXL run with the whole-step graph samples merged with its loss curve kept.

On the GPU machine: worker/.venv/bin/python -m pytest -q -m gpu worker/tests/test_sample_merge_gpu.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from loraspec_worker.train import sample_graph, sample_merge  # noqa: E402
from tiny_lora_unet import ALL_LINEAR, inputs, lora_unet  # noqa: E402
from tiny_runs import tiny_run  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _base(unet):
    return [(n, p) for n, p in unet.named_parameters() if "lora_" not in n]


def _eager(unet, dtype, seed, merge=None):
    with torch.no_grad(), (merge.merged() if merge is not None else sample_merge.merged(None)):
        return unet(**inputs(dtype, seed, "cuda"))[0].float()


def _truth(unet, seed):
    """The fp32 forward of the same bf16-rounded base and LoRA (TF32 off)."""
    fp32 = {n: p.data for n, p in _base(unet)}
    for _, p in _base(unet):
        p.data = p.data.float()
    matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        return _eager(unet, torch.float32, seed)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv
        for n, p in _base(unet):
            p.data = fp32[n]


def test_the_sample_graph_replays_the_merged_forward_and_each_samples_refreshed_weights():
    unet = lora_unet(ALL_LINEAR, b_scale=0.05, dtype=torch.bfloat16).to("cuda")
    base = {n: p.detach().clone() for n, p in _base(unet)}
    merge, graphed = sample_merge.MergedLora(unet), sample_graph.GraphedUnet()
    seeds = (2, 3)

    def sample():  # a render: the merge refreshed, every UNet call through the graph
        with torch.no_grad(), merge.merged(), sample_graph.patched(unet, graphed):
            return [unet(**inputs(torch.bfloat16, s, "cuda"))[0].float() for s in seeds]

    for round_ in range(2):
        replayed = sample()
        for s, out in zip(seeds, replayed):
            eager_merged, lora, truth = _eager(unet, torch.bfloat16, s, merge), _eager(unet, torch.bfloat16, s), _truth(unet, s)
            # the same kernels on the same buffers: equal up to two bf16 steps where the graph's cuBLAS picks another algorithm
            torch.testing.assert_close(out, eager_merged, rtol=2 ** -6, atol=1e-3)
            err_lora, err_graph = (lora - truth).abs().mean().item(), (out - truth).abs().mean().item()
            print(f"round {round_} seed {s}: mean |bf16 - fp32| LoRA path {err_lora:.2e}, merged graph replay {err_graph:.2e}")
            assert err_graph <= 1.25 * err_lora
        if round_ == 0:
            first = replayed
            with torch.no_grad():  # the optimizer moves the LoRA in place between samples
                for p in unet.parameters():
                    if p.requires_grad:
                        p.add_(torch.randn_like(p) * 0.05)
    assert (replayed[0] - first[0]).abs().mean() > 1e-2  # the second render shows the moved LoRA
    assert graphed.backend is not None and graphed.replays == 4 and graphed.eager_calls == 0 and not graphed.failed
    assert all(torch.equal(p, base[n]) for n, p in _base(unet))
    assert not any("forward" in m.__dict__ for m in unet.modules())


def test_a_tiny_sdxl_run_with_the_step_graph_samples_merged_and_keeps_its_loss_curve(tmp_path, monkeypatch):
    samples = {"every": 4, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 4, "guidance_scale": 3.0, "first": True, "width": 64, "height": 64}
    levers = {"gradient_checkpointing": False, "cuda_graphs": True, "channels_last": True, "sample_merge": "buffers"}  # core's SDXL choice
    _, on, events = tiny_run("sdxl", tmp_path, "on", monkeypatch, samples=samples, **levers)
    _, off, _ = tiny_run("sdxl", tmp_path, "off", monkeypatch, samples=None, **levers)
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert sum(m.startswith("sample merge:") for m in logs) == 1 and sum(m.startswith("sample graph captured") for m in logs) == 1
    assert all("(merge " in m for m in logs if m.startswith("samples at step"))
    assert not [e for e in events if e["type"] == "warning" and e.get("code") in (sample_merge.WARNING, sample_graph.WARNING)]
    assert len(on) == 8 and all(math.isfinite(v) for v in on)
    np.testing.assert_allclose(on, off, rtol=1e-3)
