"""The tiny SDXL UNet with a LoRA as the trainer adds it, and one batch of the samples' inputs (CFG: batch 2):
the sample-merge tests' fixture, on the CPU and on CUDA."""

from __future__ import annotations

import contextlib
import io

import torch

from loraspec_worker import tiny_base
from loraspec_worker.train.targets import peft_target_modules

ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
ALL_LINEAR = [*ATTENTION, "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"]


def lora_unet(targets=ATTENTION, b_scale=0.05, dtype=torch.float32, config=None):
    """The tiny SDXL UNet with a LoRA as the trainer adds it (fp32 LoRA parameters over the base's dtype),
    its up-projections random (a trained LoRA) unless b_scale is 0 (a fresh one)."""
    from peft import LoraConfig

    with contextlib.redirect_stdout(io.StringIO()):
        unet = tiny_base.build_sdxl(0).unet.to(dtype)
    unet.add_adapter(config or LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=peft_target_modules(targets)))
    g = torch.Generator().manual_seed(1)
    for name, p in unet.named_parameters():
        if "lora_" in name:
            p.data = p.data.float()
            if "lora_B" in name:
                p.data = torch.randn(p.shape, generator=g) * b_scale
    return unet.eval()


def inputs(dtype=torch.float32, seed=2, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(2, 4, 16, 16, generator=g).to(device, dtype), timestep=torch.tensor(500.0, device=device),
                encoder_hidden_states=torch.randn(2, 7, 64, generator=g).to(device, dtype),
                added_cond_kwargs={"text_embeds": torch.randn(2, 32, generator=g).to(device, dtype), "time_ids": torch.randn(2, 6, generator=g).to(device, dtype)},
                return_dict=False)
