"""Built-in trainer on GPU: s/step and peak memory at full size with random weights.

Builds the SDXL UNet and the FLUX.1 [dev] transformer from their published configs in code (no
downloads), bf16, and runs the worker's own training step (loraspec_worker.train: the Arch loss,
add_lora, make_optimizer, lora_state_dict, atomic_save_safetensors) at 1024x1024 (latents
128x128), rank 16, batch 1, with and without gradient checkpointing. Caption embeddings are random
tensors of the real shapes (the trainer caches them and frees the text encoders before the loop).
Then it saves the LoRA, reads it back with safetensors and loads it into a fresh adapter with
peft, and prints one JSON line per config.

Run on a CUDA machine: PYTHONPATH=worker python3 bench/worker-gpu-train.py [--steps 5] [--only sdxl]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from types import SimpleNamespace

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "worker"))

from loraspec_worker import train  # noqa: E402

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the fields that differ from diffusers' defaults)
SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
# black-forest-labs/FLUX.1-dev transformer/config.json
FLUX1_DEV = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)


def build(arch: str):
    from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel, UNet2DConditionModel

    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            if arch == "sdxl":
                model = UNet2DConditionModel(**SDXL_UNET)
                scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
                pipe = SimpleNamespace(unet=model, scheduler=scheduler, vae=SimpleNamespace(config=SimpleNamespace(block_out_channels=[128, 256, 512, 512])))
            else:
                model = FluxTransformer2DModel(**FLUX1_DEV)
                scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)
                pipe = SimpleNamespace(transformer=model, scheduler=scheduler, vae=SimpleNamespace(config=SimpleNamespace(block_out_channels=[128, 256, 512, 512])))
    finally:
        torch.set_default_dtype(prev)
    return pipe


def inputs(arch: str, device):
    g = torch.Generator(device="cpu").manual_seed(1)
    if arch == "sdxl":
        latents = torch.randn(1, 4, 128, 128, generator=g).to(device)
        text = {"embeds": torch.randn(1, 77, 2048, generator=g).to(device), "pooled": torch.randn(1, 1280, generator=g).to(device)}
    else:
        latents = torch.randn(1, 16, 128, 128, generator=g).to(device)
        text = {"embeds": torch.randn(1, 512, 4096, generator=g).to(device), "pooled": torch.randn(1, 768, generator=g).to(device),
                "text_ids": torch.zeros(512, 3, device=device)}
    extra = {"time_ids": [[1024, 1024, 0, 0, 1024, 1024]]}
    return latents, text, extra


def bench(arch: str, checkpointing: bool, steps: int, warmup: int, rank: int) -> dict:
    device = torch.device("cuda")
    cfg = train.Config(base="random", arch=arch, dataset="-", output_dir="-", resolution=1024, rank=rank, alpha=rank,
                       learning_rate=1e-4, steps=steps, precision="bf16", gradient_checkpointing=checkpointing, guidance_scale=3.5)
    t0 = time.time()
    pipe = build(arch)
    build_s = time.time() - t0
    klass = train.ARCH_CLASSES[arch]
    a = klass(pipe, cfg, device, torch.bfloat16)
    model = a.denoiser
    model.requires_grad_(False)
    lora_config = train.add_lora(model, cfg, train.TARGETS[arch])
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    opt = train.make_optimizer(cfg, params, device)
    latents, text, extra = inputs(arch, device)
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for step in range(warmup + steps):
        torch.cuda.synchronize()
        t = time.time()
        opt.zero_grad(set_to_none=True)
        gen = torch.Generator(device=device).manual_seed(step)
        loss = a.loss(latents, text, extra, gen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.time() - t)
        losses.append(float(loss.item()))
    peak = torch.cuda.max_memory_allocated() / 2**30

    # save with the trainer's writer, read back with safetensors, load into a fresh peft adapter
    from peft.utils import set_peft_model_state_dict
    from safetensors import safe_open

    out = os.path.join(tempfile.mkdtemp(), "lora.safetensors")
    tensors = train.lora_state_dict(model, a.denoiser_attr)
    train.atomic_save_safetensors(tensors, out, train.lora_metadata(cfg, {a.denoiser_attr: lora_config}, steps, 1))
    with safe_open(out, "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    model.add_adapter(lora_config, adapter_name="reload")
    prefix = a.denoiser_attr + "."
    with safe_open(out, "pt", device="cuda") as f:
        sd = {k[len(prefix):]: f.get_tensor(k) for k in keys}
    result = set_peft_model_state_dict(model, sd, adapter_name="reload")
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    row = {
        "arch": arch,
        "gradient_checkpointing": checkpointing,
        "resolution": 1024,
        "rank": rank,
        "batch": 1,
        "dtype": "bf16 base, fp32 LoRA",
        "s_per_step": sum(times) / len(times),
        "s_per_step_min": min(times),
        "peak_gib": peak,
        "steps_timed": len(times),
        "losses_finite": all(l == l and abs(l) != float("inf") for l in losses),
        "lora_keys": len(keys),
        "lora_mb": os.path.getsize(out) / 1e6,
        "reload_unexpected_keys": len(unexpected),
        "metadata_has_adapter_config": "lora_adapter_metadata" in meta,
        "build_s": build_s,
        "card": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
    }
    del model, pipe, a, opt, params, tensors
    gc.collect()
    torch.cuda.empty_cache()
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--only", choices=["sdxl", "flux1"], default=None)
    args = ap.parse_args()
    # cuDNN's SDPA backend has failed on FLUX attention shapes; use flash/efficient kernels.
    torch.backends.cuda.enable_cudnn_sdp(False)
    torch.backends.cuda.matmul.allow_tf32 = True
    for arch in ([args.only] if args.only else ["sdxl", "flux1"]):
        for ckpt in (False, True):
            try:
                row = bench(arch, ckpt, args.steps, args.warmup, args.rank)
            except torch.OutOfMemoryError as e:
                row = {"arch": arch, "gradient_checkpointing": ckpt, "error": f"OOM: {str(e)[:200]}"}
                gc.collect()
                torch.cuda.empty_cache()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
