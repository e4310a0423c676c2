"""The models and the configuration rows bench/gpu-speed.py times (split from it: the data apart from the
runner). The denoisers' published configs, the tiny CPU widths, and CONFIGS: (model, name, levers) per row; a row's
index is its --configs number, so rows are only ever appended."""

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the fields that differ from diffusers' defaults)
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280), layers_per_block=2, attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048, transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
)
# black-forest-labs/FLUX.1-dev transformer/config.json
FLUX1_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                 num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                 axes_dims_rope=(16, 56, 56))
# FLUX.2 [klein] 4B / 9B (BFL flux2 Klein4BParams / Klein9BParams: hidden 3072 / 4096, 24 / 32 heads,
# 5+20 / 8+24 blocks, context 3 x Qwen3 hidden = 7680 / 12288, mlp_ratio 3, 4-axis RoPE 32 each)
KLEIN = {
    "klein4b": dict(patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128,
                    num_attention_heads=24, joint_attention_dim=7680, mlp_ratio=3.0, axes_dims_rope=(32, 32, 32, 32),
                    rope_theta=2000, guidance_embeds=False),
    "klein9b": dict(patch_size=1, in_channels=128, num_layers=8, num_single_layers=24, attention_head_dim=128,
                    num_attention_heads=32, joint_attention_dim=12288, mlp_ratio=3.0, axes_dims_rope=(32, 32, 32, 32),
                    rope_theta=2000, guidance_embeds=False),
}
TINY = {
    "sdxl": dict(SDXL_UNET, sample_size=16, block_out_channels=(32, 64, 64), attention_head_dim=(2, 4, 4),
                 cross_attention_dim=32, transformer_layers_per_block=(1, 1, 2), addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=32 + 6 * 8, norm_num_groups=16),
    "flux1": dict(FLUX1_DEV, num_layers=2, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
                  joint_attention_dim=32, pooled_projection_dim=16, axes_dims_rope=(4, 6, 6)),
    "klein4b": dict(KLEIN["klein4b"], in_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=16,
                    num_attention_heads=2, joint_attention_dim=48, axes_dims_rope=(4, 4, 4, 4)),
}
TINY["klein9b"] = TINY["klein4b"]
ARCH_OF = {"sdxl": "sdxl", "flux1": "flux1", "klein4b": "flux2-klein", "klein9b": "flux2-klein"}
LABEL = {"sdxl": "SDXL UNet", "flux1": "FLUX.1 [dev]", "klein4b": "FLUX.2 [klein] 4B", "klein9b": "FLUX.2 [klein] 9B"}

# (model, name, settings). "eager" is the trainer before issue #9: plain AdamW (foreach), NCHW,
# no compile, cuDNN SDPA off. Each fast row names the eager row its loss curve is checked against.
EAGER = dict(fused=False, channels_last=False, compile=False, fp8=False, cudnn_sdpa=False, graphs=False, fp8mm=False)
CONFIGS = [
    ("sdxl", "eager", dict(EAGER, ckpt=False, batch=1)),
    ("sdxl", "fused AdamW + channels-last", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True)),
    ("sdxl", "+ regional compile", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, compile=True)),
    ("sdxl", "+ regional compile + cuDNN SDPA", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, compile=True, cudnn_sdpa=True)),
    ("sdxl", "CUDA graph of the whole step + channels-last", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, graphs=True)),
    ("sdxl", "eager", dict(EAGER, ckpt=False, batch=4)),
    ("sdxl", "fast", dict(EAGER, ckpt=False, batch=4, fused=True, channels_last=True, compile=True)),
    ("sdxl", "CUDA graph of the whole step + channels-last", dict(EAGER, ckpt=False, batch=4, fused=True, channels_last=True, graphs=True)),
    ("sdxl", "eager", dict(EAGER, ckpt=True, batch=1)),
    ("sdxl", "fast", dict(EAGER, ckpt=True, batch=1, fused=True, channels_last=True, compile=True)),
    ("flux1", "eager", dict(EAGER, ckpt=False, batch=1)),
    ("flux1", "fused AdamW", dict(EAGER, ckpt=False, batch=1, fused=True)),
    ("flux1", "fast", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True)),
    ("flux1", "eager", dict(EAGER, ckpt=True, batch=1)),
    ("flux1", "fast", dict(EAGER, ckpt=True, batch=1, fused=True, compile=True)),
    ("flux1", "fp8 base (24 GB recipe)", dict(EAGER, ckpt=True, batch=1, fused=True, compile=True, fp8=True)),
    ("klein4b", "eager", dict(EAGER, ckpt=False, batch=1)),
    ("klein4b", "fast", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True)),
    ("klein9b", "eager", dict(EAGER, ckpt=False, batch=1)),
    ("klein9b", "fast", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True)),
    # fp8 GEMMs for the frozen base (forward and input gradient; speed.Fp8Linear matmul + transposed)
    ("flux1", "fast + fp8 GEMMs", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, fp8mm=True)),
    ("flux1", "fast + fp8 GEMMs", dict(EAGER, ckpt=True, batch=1, fused=True, compile=True, fp8mm=True)),
    ("flux1", "fp8 base + fp8 GEMM forward (24 GB recipe)", dict(EAGER, ckpt=True, batch=1, fused=True, compile=True, fp8=True, fp8mm=True)),
    # selective activation checkpointing (issue 22; train/selective_ckpt.py keep="matmul+attention", the trainer's policy
    # until 2026-12-06, now bench rows only): matmul and attention outputs kept, element-wise ops recomputed.
    # Loss-checked against the eager row with full checkpointing (13).
    ("flux1", "selective checkpointing (no compile)", dict(EAGER, ckpt="selective", batch=1, fused=True)),
    ("flux1", "fast + selective checkpointing", dict(EAGER, ckpt="selective", batch=1, fused=True, compile=True)),
    ("flux1", "fast + fp8 GEMMs + selective checkpointing", dict(EAGER, ckpt="selective", batch=1, fused=True, compile=True, fp8mm=True)),
    # issue 22 (SDXL <= 0.08 s/step): the whole-step CUDA graph removes the launch overhead, but each kernel
    # is still eager's (GroupNorm, SiLU, the LoRA adds: separate memory passes); regional compile fuses them
    # and the graph then replays inductor's kernels. Compiled during the graph's eager warm-up steps.
    ("sdxl", "CUDA graph of the whole step + regional compile + channels-last", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, compile=True, graphs=True)),
    # cuDNN's autotuner for the UNet's convolutions (torch.backends.cudnn.benchmark): one latent shape per run
    # (the graph needs it anyway), so the per-shape search runs once, in the warm-up steps
    ("sdxl", "CUDA graph of the whole step + channels-last + cuDNN benchmark", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, graphs=True, cudnn_bench=True)),
    ("sdxl", "CUDA graph of the whole step + regional compile + channels-last + cuDNN benchmark", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, compile=True, graphs=True, cudnn_bench=True)),
    # issue 22 (klein 4B within 1.6x of its floor): the FLUX.1 fp8 GEMM lever on klein's block linears
    ("klein4b", "fast + fp8 GEMMs", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, fp8mm=True)),
    ("klein9b", "fast + fp8 GEMMs", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, fp8mm=True)),
    # issue 22: the LoRA path in the base's bf16 over fp32 master weights (the request's lora_compute bf16,
    # train/lora_compute.py) instead of peft's fp32 copies of each adapted layer's input. Each row is its
    # fp32-LoRA twin (1, 4, 26, 11, 20) plus the lever, loss-checked against the fp32 eager row (0 / 10):
    # the check then covers the lever's numerics, not only the other levers'.
    ("sdxl", "fused AdamW + channels-last + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, lora_bf16=True)),
    ("sdxl", "CUDA graph of the whole step + channels-last + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, graphs=True, lora_bf16=True)),
    ("sdxl", "CUDA graph of the whole step + regional compile + channels-last + LoRA bf16",
     dict(EAGER, ckpt=False, batch=1, fused=True, channels_last=True, compile=True, graphs=True, lora_bf16=True)),
    ("flux1", "fused AdamW + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, lora_bf16=True)),
    ("flux1", "fast + fp8 GEMMs + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, fp8mm=True, lora_bf16=True)),
    # issue 22: the LoRA path in bf16 on FLUX.2 [klein]: each row its fp32-LoRA twin (16, 17, 29 / 18, 19, 30) plus the
    # lever, loss-checked against the fp32 eager row (16 / 18)
    ("klein4b", "eager + LoRA bf16", dict(EAGER, ckpt=False, batch=1, lora_bf16=True)),
    ("klein4b", "fast + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, lora_bf16=True)),
    ("klein4b", "fast + fp8 GEMMs + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, fp8mm=True, lora_bf16=True)),
    ("klein9b", "eager + LoRA bf16", dict(EAGER, ckpt=False, batch=1, lora_bf16=True)),
    ("klein9b", "fast + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, lora_bf16=True)),
    ("klein9b", "fast + fp8 GEMMs + LoRA bf16", dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, fp8mm=True, lora_bf16=True)),
    # issue 22 (FLUX.1 <= 0.48 s/step with checkpointing): row 21 (full checkpointing, compile + fp8 GEMMs) plus the
    # LoRA path in bf16; loss-checked against the eager row with full checkpointing (13)
    ("flux1", "fast + fp8 GEMMs + LoRA bf16", dict(EAGER, ckpt=True, batch=1, fused=True, compile=True, fp8mm=True, lora_bf16=True)),
    # issue 22 (FLUX.1 <= 0.48 s/step with checkpointing, memory near full checkpointing's): row 42 with selective
    # checkpointing that keeps only the attention outputs (train/selective_ckpt.py keep="attention": every matmul is
    # recomputed once more, the attention kernel is not; checkpointing_mode "selective" since 2026-12-06), then with the
    # matmul+attention list (the trainer's until then) for comparison;
    # loss-checked against the eager row with full checkpointing (13)
    ("flux1", "fast + fp8 GEMMs + LoRA bf16 + selective checkpointing (attention outputs only)",
     dict(EAGER, ckpt="selective-attention", batch=1, fused=True, compile=True, fp8mm=True, lora_bf16=True)),
    ("flux1", "fast + fp8 GEMMs + LoRA bf16 + selective checkpointing", dict(EAGER, ckpt="selective", batch=1, fused=True, compile=True, fp8mm=True, lora_bf16=True)),
    # issue 22 (FLUX.1's host works 0.25 s of its 0.29 s step, `timing.host_split`): row 35 replayed as one CUDA graph of
    # the whole step over the compiled blocks (FLUX.1's loss splits into draw / loss_from since 2026-12-06, so
    # speed.GraphedStep can capture it); loss-checked against the eager row (10); `graph_captured` says whether it held
    ("flux1", "CUDA graph of the whole step + compile + fp8 GEMMs + LoRA bf16",
     dict(EAGER, ckpt=False, batch=1, fused=True, compile=True, fp8mm=True, lora_bf16=True, graphs=True)),
]
