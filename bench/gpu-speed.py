"""Training speed of the built-in trainer on a GPU: every configuration built, checked and timed in one call.

For each model (SDXL UNet, FLUX.1 [dev] transformer, FLUX.2 [klein] 4B and 9B transformers, built in
code from their published configs with random weights, no downloads) and each configuration
(eager = the trainer's old path; then the speed levers of worker/loraspec_worker/speed.py), it runs
the worker's own training step (train.py: the arch loss, add_lora, make_optimizer) for --steps steps
(default 50) at 1024x1024, LoRA rank 16, bf16 base, fp32 LoRA, AdamW, with the same data and noise
seeds, and reports:
  - s/step: mean of the steps after the first --warmup (compile happens in the first steps),
  - peak memory: torch.cuda.max_memory_allocated and max_memory_reserved over the loop, plus the
    CUDA context measured once (what nvidia-smi would show is reserved + context),
  - FLOPs of one step counted with torch.utils.flop_counter (matmuls, convolutions, attention) and
    the floor = FLOPs / the bf16 matmul rate measured on this card in the same run,
  - the loss check: the fast configuration's loss curve against its eager twin's over all steps
    (same seeds; bf16 noise only): max and mean relative difference, pass if the mean is below 2%
    and the max below 10%.
One JSON line per configuration on stdout; with --md FILE also a markdown table.

Run on a CUDA machine:  PYTHONPATH=worker python3 bench/gpu-speed.py [--only sdxl,flux1] [--steps 50]
Adapter kinds (network.type): --networks lora,dora,lokr,loha runs each selected row once per kind (rank --rank, LoKr factor -1,
on --targets) and reports each kind's s/step and peak against the LoRA row of the same configuration (vs_lora, peak_vs_lora):
the plan's DoRA/LoKr/LoHa factors (packages/core/src/knowledge/network-type-cost.ts) hold the H200 rows of 2026-12-02 (bench/data).
  PYTHONPATH=worker python3 bench/gpu-speed.py --configs 0,10 --networks lora,dora,lokr,loha --steps 30 --warmup 5 --md /tmp/networks.md
LoRA compute in bf16 (issue 22; the request's lora_compute): rows 31-35, each its fp32-LoRA twin plus the lever,
loss-checked against the fp32 eager row; with --profile the LoRA's GEMMs and the dtype copies show what it saved:
  PYTHONPATH=worker python3 bench/gpu-speed.py --only sdxl --configs 0,1,31,4,32,26,33 --steps 30 --profile 4
  PYTHONPATH=worker python3 bench/gpu-speed.py --only flux1 --configs 10,11,34,20,35 --steps 30 --profile 4
Selective checkpointing (issue 22): --configs 13,23,24,25 (eager full checkpointing, then selective eager,
compiled, compiled + fp8 GEMMs; each loss-checked against row 13). The goal's candidate (<= 0.48 s/step with
checkpointing): --configs 13,42,43,44 --attention fa4 (full checkpointing; selective keeping only the attention outputs,
the trainer's checkpointing_mode selective since 2026-12-06; the matmul + attention list, the trainer's before; each with
compile, fp8 GEMMs and the LoRA in bf16).
FLUX.1's whole step as one CUDA graph (issue 22; FLUX.1's host works 0.25 s of its 0.29 s step): --only flux1
--configs 10,35,45 --attention fa4 (row 45 is row 35 replayed as one graph; `graph_captured` false means the capture failed).
Two GPUs (issue #9's data-parallel goal): add --processes 2; each selected row then also runs on 2 GPUs with the
trainer's gradient all-reduce (distributed.Group) and reports images/s against the 1-GPU row of the same call.
CPU smoke test (tiny widths, same classes and code paths): PYTHONPATH=worker python3 bench/gpu-speed.py --tiny --steps 4
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from types import SimpleNamespace

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "worker"))

from loraspec_worker import speed, train  # noqa: E402
from loraspec_worker.train import lora_compute, selective_ckpt, setup  # noqa: E402
from loraspec_worker.train.dev_request import dev_config  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_profile  # noqa: E402
from gpu_speed_dp import run_data_parallel  # noqa: E402
from gpu_speed_report import markdown  # noqa: E402
from gpu_speed_configs import ARCH_OF, CONFIGS, FLUX1_DEV, KLEIN, LABEL, SDXL_UNET, TINY  # noqa: E402


def twin_key(model: str, s: dict) -> tuple:
    """The eager row a configuration is checked against: same model, batch, and checkpointing on/off
    (selective checkpointing against eager full checkpointing: the loss must not change)."""
    return (model, bool(s["ckpt"]), s["batch"])


def build(model: str, device, dtype, tiny: bool):
    from diffusers import (EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel,
                           FluxTransformer2DModel, UNet2DConditionModel)

    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=[128, 256, 512, 512]))
    try:
        with torch.device(device):
            cfg = (TINY if tiny else {"sdxl": SDXL_UNET, "flux1": FLUX1_DEV, **KLEIN})[model]
            if model == "sdxl":
                unet = UNet2DConditionModel(**cfg)
                sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
                return SimpleNamespace(unet=unet, scheduler=sched, vae=vae)
            if model == "flux1":
                net = FluxTransformer2DModel(**cfg)
                return SimpleNamespace(transformer=net, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True), vae=vae)
            net = Flux2Transformer2DModel(**cfg)
            return SimpleNamespace(transformer=net, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True), vae=vae)
    finally:
        torch.set_default_dtype(prev)


def inputs(model: str, batch: int, device, tiny: bool):
    """Cached latents and caption embeddings of the real shapes (1024x1024; T5/Qwen length 512)."""
    from diffusers import Flux2KleinPipeline

    g = torch.Generator(device="cpu").manual_seed(1)
    lat = 16 if tiny else 128
    seq = 8 if tiny else 512
    c = TINY[model] if tiny else None
    if model == "sdxl":
        latents = torch.randn(batch, 4, lat, lat, generator=g)
        ctx = c["cross_attention_dim"] if tiny else 2048
        pooled = (c["projection_class_embeddings_input_dim"] - 6 * c["addition_time_embed_dim"]) if tiny else 1280
        text = {"embeds": torch.randn(batch, 77, ctx, generator=g), "pooled": torch.randn(batch, pooled, generator=g)}
    elif model == "flux1":
        latents = torch.randn(batch, 16, lat, lat, generator=g)
        text = {"embeds": torch.randn(batch, seq, c["joint_attention_dim"] if tiny else 4096, generator=g),
                "pooled": torch.randn(batch, c["pooled_projection_dim"] if tiny else 768, generator=g),
                "text_ids": torch.zeros(seq, 3)}
    else:
        ch = c["in_channels"] if tiny else 128
        latents = torch.randn(batch, ch, lat // 2, lat // 2, generator=g)
        embeds = torch.randn(batch, seq, c["joint_attention_dim"] if tiny else KLEIN[model]["joint_attention_dim"], generator=g)
        text = {"embeds": embeds, "text_ids": Flux2KleinPipeline._prepare_text_ids(embeds)}
    res = lat * 8
    extra = {"time_ids": [[res, res, 0, 0, res, res]] * batch}
    return latents.to(device), {k: v.to(device) for k, v in text.items()}, extra


def matmul_tflops(device) -> float:
    """Dense bf16 GEMM rate of this card (8192^3, best of 20), the denominator of the floor."""
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(20):
        torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * 8192**3 / best / 1e12


def setup_config(model, s, args, device, dtype) -> SimpleNamespace:
    """The row's denoiser with its adapter and levers, the optimiser (or the whole-step CUDA graph) and the
    inputs, set up as the trainer does; build_s is the time that took, state_bytes the weights and LoRA state."""
    arch = ARCH_OF[model]
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(bool(s["cudnn_sdpa"]))
        torch.backends.cudnn.benchmark = bool(s.get("cudnn_bench"))
    cfg = dev_config(base="random", arch=arch, resolution=1024, rank=args.rank, alpha=args.rank,
                     learning_rate=1e-4, steps=args.steps, precision="bf16", gradient_checkpointing=bool(s["ckpt"]),
                     checkpointing_mode="selective" if str(s["ckpt"]).startswith("selective") else "full", guidance_scale=3.5, batch_size=s["batch"],
                     network_type=s.get("network", "lora"), network_factor=-1, lora_compute="bf16" if s.get("lora_bf16") else "fp32")
    t0 = time.time()
    pipe = build(model, device, dtype, args.tiny)
    a = train.ARCH_CLASSES[arch](pipe, cfg, device, dtype)
    net = a.denoiser
    net.requires_grad_(False)
    # --targets: a network.targets preset of core's table (knowledge/lora-targets.ts); default attention.
    train.add_lora(net, cfg, train.config.TABLE["targetPresets"][arch]["presets"][args.targets])
    if s["fp8"] or s["fp8mm"]:
        speed.quantize_fp8_(net, device, dtype, matmul=s["fp8mm"], fp8_base=s["fp8"])
    if s["channels_last"]:
        speed.use_channels_last(net)
    params = [p for p in net.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    lora_compute.apply(net, setup.lora_compute_for(cfg, dtype))  # the trainer's: bf16 over a bf16 base only
    if str(s["ckpt"]).startswith("selective"):  # before compile: the checkpoint sits inside each compiled block
        selective_ckpt.apply(net, keep="attention" if s["ckpt"] == "selective-attention" else "matmul+attention")
    elif s["ckpt"]:
        net.enable_gradient_checkpointing()
    if s["compile"]:
        speed.compile_blocks(net)
    net.train()
    adam = dict(betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)
    if s["graphs"]:
        opt = speed.make_capturable_adamw(params, 1e-4, device, **adam)
        stepper = speed.GraphedStep(a, params, opt, max_grad_norm=1.0)
    else:
        opt = torch.optim.AdamW(params, lr=1e-4, **adam, **({"fused": True} if s["fused"] else {}))
        stepper = None
    latents, text, extra = inputs(model, s["batch"], device, args.tiny)
    if s["channels_last"]:
        latents = latents.contiguous(memory_format=torch.channels_last)
    build_s = time.time() - t0
    # for the VRAM model's activation figure (knowledge/vram.ts: (peak + context - weights - LoRA state) per token x hidden x block)
    state_bytes = sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()]) + 3 * sum(p.numel() * 4 for p in params)
    return SimpleNamespace(pipe=pipe, a=a, net=net, params=params, opt=opt, stepper=stepper, latents=latents, text=text, extra=extra,
                           build_s=build_s, state_bytes=state_bytes)


def count_flops(r: SimpleNamespace, key: tuple, name: str, s: dict, device, flops_cache: dict) -> None:
    """FLOPs of one step (forward and backward) into flops_cache[key], once per key, on an uncompiled
    full-precision row only; the gradients it leaves are cleared."""
    if key not in flops_cache and not s["compile"] and not s["fp8"] and not s["fp8mm"]:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        try:
            with counter:
                loss = r.a.loss(r.latents, r.text, r.extra, torch.Generator(device=device).manual_seed(10**6))
                loss.backward()
            flops_cache[key] = counter.get_total_flops()
        except Exception as e:  # noqa: BLE001 - a counter that cannot nest (selective checkpointing's modes): no floor, the row still runs
            print(json.dumps({"flop_count_failed": name, "error": f"{type(e).__name__}: {str(e)[:200]}"}), file=sys.stderr)
        r.opt.zero_grad(set_to_none=True)


def timed_steps(r: SimpleNamespace, args, device, group=None):
    """args.steps training steps, each timed alone (the steps from args.warmup on are the s/step); returns
    (one_step, timed): the step function (gpu_profile profiles more of it) and the times, losses, all-reduce
    times and the warm-up steps' total."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timed = SimpleNamespace(times=[], losses=[], allreduce=[], first_steps_s=0.0)

    def one_step(step: int):
        gen = torch.Generator(device=device).manual_seed(step)
        if r.stepper is not None:
            return r.stepper.step(r.latents, r.text, r.extra, gen)
        r.opt.zero_grad(set_to_none=True)
        loss = r.a.loss(r.latents, r.text, r.extra, gen)
        loss.backward()
        if group is not None:
            # the trainer's data-parallel step (distributed.py), timed alone: the most DDP's
            # overlap of this all-reduce with the backward could save (docs/design-notes.md)
            if cuda:
                torch.cuda.synchronize()
            t_ar = time.perf_counter()
            group.average_gradients(r.params)
            if cuda:
                torch.cuda.synchronize()
            if step >= args.warmup:
                timed.allreduce.append(time.perf_counter() - t_ar)
        torch.nn.utils.clip_grad_norm_(r.params, 1.0)
        r.opt.step()
        return loss

    for step in range(args.steps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = one_step(step)
        timed.losses.append(float(loss.item()))  # the trainer reads the loss every step too
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        if step >= args.warmup:
            timed.times.append(dt)
        else:
            timed.first_steps_s += dt
    return one_step, timed


def result_row(model, name, s, args, r: SimpleNamespace, timed: SimpleNamespace, flops, profiled: dict, cuda: bool) -> dict:
    """The row's JSON: the configuration, s/step, the losses, FLOPs and, on CUDA, the peak memory."""
    times, params = timed.times, r.params
    row = {
        "model": model, "label": LABEL[model], "config": name, "gradient_checkpointing": s["ckpt"], "batch": s["batch"],
        "levers": [k for k in ("fused", "channels_last", "compile", "fp8", "fp8mm", "cudnn_sdpa", "graphs", "cudnn_bench", "lora_bf16") if s.get(k)],
        "targets": args.targets, "network_type": s.get("network", "lora"),
        "lora_modules": sum(1 for m in r.net.modules() if any(hasattr(m, a) for a in ("lora_A", "lokr_w1", "hada_w1_a"))),
        "adapter_params": sum(p.numel() for p in params),
        "s_per_step": sum(times) / len(times) if times else None,
        "s_per_step_min": min(times) if times else None,
        "warmup_s": timed.first_steps_s, "build_s": r.build_s, "steps": args.steps, "losses": timed.losses,
        "flops_per_step": flops, **profiled,
    }
    if timed.allreduce:
        row["allreduce_s_per_step"] = sum(timed.allreduce) / len(timed.allreduce)
    if r.stepper is not None:  # a failed capture trains on eagerly: never report that as the graph's speed
        row["graph_captured"] = r.stepper.graph is not None
    if cuda:
        row["peak_alloc_gib"] = torch.cuda.max_memory_allocated() / 2**30
        row["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        row["weights_and_lora_state_gib"] = r.state_bytes / 2**30
        cfgd = None if model == "sdxl" else TINY[model] if args.tiny else {"flux1": FLUX1_DEV, **KLEIN}[model]
        if cfgd is not None:  # transformers: tokens = image patches + text; hidden; blocks
            tokens = (r.latents.shape[-1] // 2) ** 2 + (8 if args.tiny else 512)
            thb = tokens * cfgd["num_attention_heads"] * cfgd["attention_head_dim"] * (cfgd["num_layers"] + cfgd["num_single_layers"]) * s["batch"]
            row["token_hidden_blocks"] = thb  # main() adds the CUDA context and divides
    return row


def run_config(model, name, s, args, device, dtype, flops_cache, group=None) -> dict:
    """One configuration's row: set up (setup_config), one step's FLOPs counted once per key (count_flops),
    args.steps steps timed (timed_steps), --profile's extra steps on CUDA, then the row (result_row)."""
    cuda = device.type == "cuda"
    r = setup_config(model, s, args, device, dtype)
    key = (model, s["ckpt"], s["batch"], s.get("network", "lora"))  # LoKr/LoHa's dense ΔW GEMMs are FLOPs of their own
    count_flops(r, key, name, s, device, flops_cache)
    one_step, timed = timed_steps(r, args, device, group)
    profiled = gpu_profile.profile(one_step, args.profile, args.rank, args.steps) if args.profile and cuda and group is None else {}
    row = result_row(model, name, s, args, r, timed, flops_cache.get(key), profiled, cuda)
    one_step = r = None  # frees the model (r holds it; one_step's closure names r)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch._dynamo.reset()
    return row


def loss_check(fast: list[float], eager: list[float]) -> dict:
    rel = [abs(f - e) / max(abs(e), 1e-8) for f, e in zip(fast, eager)]
    mean, mx = sum(rel) / len(rel), max(rel)
    return {"loss_mean_rel_diff": mean, "loss_max_rel_diff": mx, "loss_check": "pass" if mean < 0.02 and mx < 0.10 else "FAIL"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--only", default=None, help="comma-separated models: sdxl,flux1,klein4b,klein9b")
    ap.add_argument("--configs", default=None, help="comma-separated row indices of CONFIGS to run")
    ap.add_argument("--tiny", action="store_true", help="tiny widths on the CPU (a smoke test of the code paths)")
    ap.add_argument("--targets", default="attention", choices=["attention", "attention-mlp", "all-linear"],
                    help="the LoRA's network.targets preset (core's table); issue 22's all-linear rows used all-linear")
    ap.add_argument("--networks", default=None,
                    help="comma-separated network.type kinds (lora,dora,lokr,loha): each selected row once per kind, compared with its LoRA twin")
    ap.add_argument("--md", default=None)
    ap.add_argument("--profile", type=int, default=0, help="profile this many more steps of each row (bench/gpu_profile.py: GPU time per kernel, the LoRA's GEMMs apart)")
    ap.add_argument("--processes", type=int, default=1,
                    help="also run each selected row data-parallel on this many GPUs (the trainer's all-reduce) and report the throughput ratio")
    ap.add_argument("--attention", default="sdpa", choices=["sdpa", "fa4"],
                    help="fa4: route SDPA's flash kernel to FlashAttention-4 for the whole call (torch's registry; needs flash-attn-4)")
    args = ap.parse_args()
    if args.attention == "fa4":
        # The trainer's own checks and shim (train/attention.py): one home for how FA4 is activated.
        from loraspec_worker.train import attention

        blockers = attention.device_blockers(torch.device("cuda"))
        if blockers:
            sys.exit("--attention fa4: " + "; ".join(blockers))
        attention.register_and_activate()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info()
        context_gib = (total - free) / 2**30  # nothing allocated yet: the context and the driver's reserve
        tflops = matmul_tflops(device)
        card = torch.cuda.get_device_name(0)
    else:
        context_gib, tflops, card = 0.0, 1.0, "cpu"
    only = set(args.only.split(",")) if args.only else None
    picked = set(int(i) for i in args.configs.split(",")) if args.configs else None
    rows, eager_rows, flops_cache = [], {}, {}
    print(json.dumps({"card": card, "torch": torch.__version__, "bf16_tflops": tflops, "context_gib": context_gib, "attention": args.attention}), flush=True)
    networks = args.networks.split(",") if args.networks else ["lora"]
    selected = [(i, model, name, dict(s, network=kind)) for i, (model, name, s) in enumerate(CONFIGS) for kind in networks
                if not ((only and model not in only) or (picked is not None and i not in picked))]
    lora_rows = {}
    for i, model, name, s in selected:
        kind = s["network"]
        try:
            row = run_config(model, name, s, args, device, dtype, flops_cache)
        except Exception as e:  # an OOM or a compile failure is a result too; the other rows still run
            row = {"model": model, "label": LABEL[model], "config": name, "gradient_checkpointing": s["ckpt"], "batch": s["batch"],
                   "error": f"{type(e).__name__}: {str(e)[:300]}"}
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch._dynamo.reset()
        key = twin_key(model, s)
        if kind != "lora":  # another adapter: its own loss curve; compared with the LoRA row of the same configuration
            row["config"] = f"{name} [{kind}]"
            twin = lora_rows.get(i)
            if twin and "error" not in row and row.get("s_per_step"):
                row["vs_lora"] = row["s_per_step"] / twin["s_per_step"]
                if "peak_alloc_gib" in row:
                    row["peak_vs_lora"] = row["peak_alloc_gib"] / twin["peak_alloc_gib"]
                    row["peak_minus_lora_gib"] = row["peak_alloc_gib"] - twin["peak_alloc_gib"]
        elif "error" not in row:
            lora_rows[i] = row
        if "error" not in row:
            if kind == "lora" and name == "eager":
                eager_rows[key] = row
            elif kind == "lora" and key in eager_rows:
                row.update(loss_check(row["losses"], eager_rows[key]["losses"]))
                row["eager_s_per_step"] = eager_rows[key]["s_per_step"]
            fkey = (model, s["ckpt"], s["batch"], kind)  # selective recomputes less than full: its own FLOPs
            if row.get("flops_per_step") is None and fkey in flops_cache:
                row["flops_per_step"] = flops_cache[fkey]
            if "token_hidden_blocks" in row and "peak_alloc_gib" in row:  # compare with VRAM_ACTIVATIONS / VRAM_SELECTIVE_ACTIVATIONS
                act = (row["peak_alloc_gib"] + context_gib - row["weights_and_lora_state_gib"]) * 2**30
                row["activation_bytes_per_token_hidden_block"] = act / row["token_hidden_blocks"]
            if row["flops_per_step"]:
                row["floor_s"] = row["flops_per_step"] / (tflops * 1e12)
        rows.append(row)
        print(json.dumps({**row, "card": card, "attention": args.attention}), flush=True)
        if args.processes > 1 and "error" not in row and not s["graphs"]:
            multi = run_data_parallel(run_config, model, name, s, args, device)
            multi["throughput_ratio"] = (multi["processes"] * s["batch"] / multi["s_per_step"]) / (s["batch"] / row["s_per_step"]) if "s_per_step" in multi else None
            rows.append(multi)
            print(json.dumps({**multi, "card": card}), flush=True)
    if args.md:
        with open(args.md, "w") as f:
            f.write(markdown(rows, tflops, card, context_gib) + "\n")


if __name__ == "__main__":
    main()
