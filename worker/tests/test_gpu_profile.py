"""bench/gpu_profile.py (gpu-speed --profile): the LoRA's GEMMs are told apart from the base's by the rank
in their input shapes. Run on the CPU with the ops' CPU times (the GPU path differs only in which time it reads)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import gpu_profile  # noqa: E402


def test_the_lora_matmuls_are_split_from_the_base_matmuls(one_thread):
    from peft import LoraConfig, inject_adapter_in_model
    from torch.profiler import ProfilerActivity, profile

    rank = 4
    net = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.Linear(48, 32))
    net.requires_grad_(False)
    net = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=["0"]), net)
    x = torch.randn(2, 10, 32)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(3):
            net(x).sum().backward()
    out = gpu_profile.summarize(prof, 3, rank, on="cpu")
    # one adapted linear: down and up GEMMs forward, their weight and input gradients backward
    assert out["lora_matmul_calls_per_step"] >= 2
    assert out["lora_matmul_ms_per_step"] > 0 and out["base_matmul_ms_per_step"] > 0
    assert out["top_ops_self_ms_per_step"]
    # without an adapter no matmul has the rank in its shapes
    plain = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.Linear(48, 32))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        plain(x).sum().backward()
    assert gpu_profile.summarize(prof, 1, rank, on="cpu")["lora_matmul_calls_per_step"] == 0
