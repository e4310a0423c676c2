"""Trains the toy FLUX.1-architecture base from scratch on the toy world (the base world of
train_base.py: solid fills, never the concept pairs), with the real diffusers and transformers
classes at small widths, and saves it as an ordinary FluxPipeline folder (bf16).

  1. an AutoencoderKL with 16 latent channels like FLUX's (64x64 pixels <-> 16x16x16 latents, no
     quant convs); its shift_factor and scaling_factor are the mean and 1 / std of its latents, as
     FLUX's 0.1159 and 0.3611 were chosen;
  2. the CLIP text encoder (pooled output), the T5 encoder and the FluxTransformer2DModel (guidance
     embedding, like FLUX.1 [dev]), trained together on train.py's Flux1.loss itself (packed 2x2
     latents -> 64 image tokens, sigmas from the FlowMatchEulerDiscreteScheduler, the guidance
     embedding held at GUIDANCE), with CAPTION_DROPOUT of the captions replaced by the empty
     prompt, encoded as FluxPipeline.encode_prompt encodes "" (the encoders train, so that
     embedding moves with them); EMA weights are saved.
FluxPipeline feeds T5 every padding token (no attention mask), so the model sees the padding
length: training cycles through --t5-lengths (default T5_LENGTHS: 512 is the pipeline's default;
128 keeps the tests fast), and sampling works at those only: toyworld.json's transformer.t5_lengths
records them, and the evaluation and everything that samples a toy FLUX.1 base take the length
from there (base_t5_lengths, sampling_lengths). Each phase runs for a step count or a time budget,
whichever ends first; the end evaluation (evaluate_base, the judge on held-out prompts) goes to
toyworld.json in the folder. The transformer phase's speed levers (--no-host-sync, --fused-adam,
--compile, --lr-rule) and their throughput probe are flux_speed.py's; all off is the committed loop.
"""

from __future__ import annotations

import copy
import json
import os
import time

from loraspec_worker import tiny_base
from loraspec_worker.tiny_base import flux_scheduler

from .flux_speed import Levers, compile_models, scaled_lr
from .tokenizer import toy_clip_tokenizer, toy_t5_tokenizer
from .train_base import (CAPTION_DROPOUT, CODEC_SCENES, eval_prompts, evaluate_base, make_base_dataset, record_saved, render_base_images,
                         style_roundtrip, toy_clip_config, toy_vae, train_vae)

# The guidance embedding's value in training: the built-in LoRA trainer's default guidance_scale
# (train.py Config), so a LoRA trains at the value the base learnt; sample at guidance_scale 1.0.
GUIDANCE = 1.0
T5_LENGTHS = (512, 128)
# Sampling with true CFG against the empty prompt (FluxPipeline true_cfg_scale + negative_prompt
# ""): the toy base is not guidance-distilled, so its guidance embedding does not guide.
EVAL_TRUE_CFG = 4.0
# The transformer phase's loss bookkeeping: every LOSS_EVERY-th step's loss is kept, their mean is
# logged every LOG_EVERY steps, and final_loss is their mean over the last FINAL_LOSS_STEPS steps.
LOSS_EVERY, LOG_EVERY, FINAL_LOSS_STEPS = 10, 200, 500


def build_models(seed: int = 0, heads: int = 6, double_layers: int = 2, single_layers: int = 4, vae_levels: int = 3) -> dict:
    """heads x 32 is the transformer's width; vae_levels 3 is the /4 VAE (8x8 image tokens of 8x8
    pixels), 2 the /2 VAE (16x16 tokens of 4x4 pixels)."""
    import torch
    from diffusers import FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    tok = toy_clip_tokenizer()
    tok2 = toy_t5_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(toy_clip_config(tok))
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tok2), d_model=128, d_kv=32, d_ff=256, num_layers=3, num_heads=4, relative_attention_num_buckets=32,
        relative_attention_max_distance=128, feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0))
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2x2
        num_layers=double_layers,
        num_single_layers=single_layers,
        attention_head_dim=32,
        num_attention_heads=heads,
        joint_attention_dim=128,  # T5 d_model
        pooled_projection_dim=64,  # CLIP hidden size
        guidance_embeds=True,  # like FLUX.1 [dev]
        axes_dims_rope=[8, 12, 12],  # sums to attention_head_dim (FLUX.1: 16, 56, 56 of 128)
    )
    vae = toy_vae(latent_channels=16, levels=vae_levels, use_quant_conv=False, use_post_quant_conv=False)  # no quant convs, as FLUX's VAE
    scheduler = flux_scheduler()  # FLUX.1 [dev]'s scheduler config
    return {"tokenizer": tok, "tokenizer_2": tok2, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2,
            "transformer": transformer, "vae": vae, "scheduler": scheduler}


def make_pipeline(models: dict):
    from diffusers import FluxPipeline

    return FluxPipeline(scheduler=models["scheduler"], vae=models["vae"], text_encoder=models["text_encoder"],
                        tokenizer=models["tokenizer"], text_encoder_2=models["text_encoder_2"], tokenizer_2=models["tokenizer_2"],
                        transformer=models["transformer"])


def tokenize(models: dict, prompts: list[str], t5_length: int):
    """Token ids as FluxPipeline.encode_prompt makes them: CLIP padded to 77, T5 to t5_length."""
    clip = models["tokenizer"](prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    t5 = models["tokenizer_2"](prompts, padding="max_length", max_length=t5_length, truncation=True, return_tensors="pt").input_ids
    return clip, t5


def encode_text(te1, te2, clip_ids, t5_ids) -> dict:
    """What FluxPipeline.encode_prompt computes (CLIP pooled output, T5 last hidden state, zero
    text ids), with gradients."""
    import torch

    pooled = te1(clip_ids, output_hidden_states=False).pooler_output
    embeds = te2(t5_ids, output_hidden_states=False)[0]
    return {"embeds": embeds, "pooled": pooled, "text_ids": torch.zeros(t5_ids.shape[1], 3, device=t5_ids.device)}


def object_weights(masks, factor: int, object_weight: float):
    """Per-latent-pixel loss weights from object masks (N x 64 x 64 bool): 1 + object_weight x the
    share of object pixels (grown by 2 px, so the outline's background side counts) under each
    latent pixel of a /factor VAE."""
    import torch.nn.functional as F

    m = F.max_pool2d(masks[:, None].float(), 5, stride=1, padding=2)
    return 1 + object_weight * F.avg_pool2d(m, factor)


def loss_weights(masks, bands, factor: int, object_weight: float = 0.0, outline_weight: float = 0.0):
    """The per-latent-pixel loss weights of a /factor VAE, or None for the plain loss: 1, plus
    object_weights' object term (masks), plus outline.outline_weights' outline term (bands); the
    terms add."""
    if object_weight <= 0 and outline_weight <= 0:
        return None
    weights = object_weights(masks, factor, object_weight) if object_weight > 0 else 1.0
    if outline_weight > 0:
        from .outline import outline_weights

        weights = weights + outline_weights(bands, factor, outline_weight)
    return weights


def encode_latents(vae, images, device):
    """The images' latents as Flux1.encode_images makes them (the mode, shifted and scaled), 1024 at a
    time; the VAE moves to device in eval mode."""
    import torch

    vae.to(device).eval()
    with torch.no_grad():
        latents = []
        for i in range(0, images.shape[0], 1024):
            x = images[i : i + 1024].to(device).float() / 127.5 - 1
            latents.append((vae.encode(x).latent_dist.mode() - vae.config.shift_factor) * vae.config.scaling_factor)
        return torch.cat(latents)


def caption_ids(models: dict, captions, t5_lengths, device):
    """Token ids of both caption styles ({0: [clip, t5], 1: [clip, t5]}) and of the empty prompt (clip,
    t5), T5 padded to the longest of t5_lengths; E_USAGE when a caption does not fit the shortest."""
    from loraspec_worker.protocol import WorkerError

    longest = max(t5_lengths)
    ids = {style: [t.to(device) for t in tokenize(models, [c[style] for c in captions], longest)] for style in (0, 1)}
    if int((ids[0][1] != 0).sum(1).max()) >= min(t5_lengths) or int((ids[1][1] != 0).sum(1).max()) >= min(t5_lengths):
        # the shorter lengths are taken as prefixes of the longest, which holds only when every caption fits
        raise WorkerError("E_USAGE", f"a caption is longer than {min(t5_lengths)} T5 tokens", hint="raise the shortest --t5-lengths")
    empty_clip, empty_t5 = (t.to(device) for t in tokenize(models, [""], longest))
    return ids, empty_clip, empty_t5


def draw_batch(g, draw_device, device, count: int, batch: int, ids: dict, empty_clip, empty_t5, length: int):
    """One training batch drawn with g on draw_device (in this order: the images, the caption style,
    the CAPTION_DROPOUT draws): the image indices and the CLIP and T5 ids (T5 cut to length)."""
    import torch

    idx = torch.randint(0, count, (batch,), generator=g, device=draw_device).to(device)
    style = torch.randint(0, 2, (batch, 1), generator=g, device=draw_device).to(device)
    keep = (torch.rand((batch, 1), generator=g, device=draw_device) >= CAPTION_DROPOUT).to(device)
    clip_ids = torch.where(keep, torch.where(style == 0, ids[0][0][idx], ids[1][0][idx]), empty_clip)
    t5_ids = torch.where(keep, torch.where(style == 0, ids[0][1][idx, :length], ids[1][1][idx, :length]), empty_t5[:, :length])
    return idx, clip_ids, t5_ids


def train_transformer(models, images, captions, *, device, steps: int, seconds: float, batch: int = 256, lr: float = 4e-4,
                      t5_lengths=T5_LENGTHS, weighting: str = "none", masks=None, object_weight: float = 0.0, bands=None,
                      outline_weight: float = 0.0, levers: Levers = Levers(), log=print, on_step=None) -> dict:
    """weighting: the sigma sampling of train.py's Config.timestep_sampling (none: uniform, as the
    LoRA trainer's default; logit_normal: SD3's, denser at mid noise; shift: Kohya's flux_shift,
    sigmoid(N(0,1)) shifted toward high noise by the token count). object_weight > 0 (with masks):
    the loss on the objects' latent pixels weighs 1 + object_weight (object_weights); outline_weight
    > 0 (with bands, outline.py) adds outline_weight on the outline band (loss_weights). levers: the
    speed levers (flux_speed.py; all off is the committed loop). on_step(step): called after each
    step (the throughput probe's clock)."""
    import torch

    from loraspec_worker.train import Flux1
    from loraspec_worker.train.dev_request import dev_config

    te1, te2, transformer = (models[k] for k in ("text_encoder", "text_encoder_2", "transformer"))
    latents = encode_latents(models["vae"], images, device)
    weights = loss_weights(masks, bands, images.shape[-1] // latents.shape[-1], object_weight, outline_weight)
    weights = None if weights is None else weights.to(device)
    ids, empty_clip, empty_t5 = caption_ids(models, captions, t5_lengths, device)

    # the loss is the LoRA trainer's own (fp32 weights under bf16 autocast)
    cfg = dev_config(arch="flux1", guidance_scale=GUIDANCE, timestep_sampling={"none": "uniform"}.get(weighting, weighting))
    flux = Flux1(make_pipeline(models), cfg, device, torch.float32)
    trainable = [te1, te2, transformer]
    for m in trainable:
        m.to(device).train()
    params = [p for m in trainable for p in m.parameters()]
    ema = [copy.deepcopy(m).eval().requires_grad_(False) for m in trainable]
    ema_params = [p for m in ema for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2, **({"fused": True} if levers.fused_adam else {}))
    compiled = compile_models(trainable, levers.compile)
    if compiled:
        log(f"torch.compile ({levers.compile}): {compiled} modules; the first steps of each T5 length compile")
    # the batch draws: on the host (a copy to the GPU that waits for it, three per step) or, with
    # no_host_sync, on the device itself (another random stream)
    draw_device = device if levers.no_host_sync else torch.device("cpu")
    g = torch.Generator(device=draw_device).manual_seed(2)
    noise_gen = torch.Generator(device=device).manual_seed(3)
    started, step, recent, pending = time.time(), 0, [], []

    def read_losses():  # the pending losses in one copy (one wait for the GPU)
        if pending:
            recent.extend(torch.stack(pending).float().tolist())
            pending.clear()

    while step < steps and time.time() - started < seconds:
        step += 1
        if levers.compile == "graphs":
            torch.compiler.cudagraph_mark_step_begin()
        for group in opt.param_groups:  # short warm-up, then constant
            group["lr"] = lr * min(1.0, step / 200)
        length = t5_lengths[step % len(t5_lengths)]
        idx, clip_ids, t5_ids = draw_batch(g, draw_device, device, latents.shape[0], batch, ids, empty_clip, empty_t5, length)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            text = encode_text(te1, te2, clip_ids, t5_ids)
            loss = flux.loss(latents[idx], text, {} if weights is None else {"loss_weight": weights[idx]}, noise_gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - decay)  # one launch instead of one per tensor
        if step % LOSS_EVERY == 0:  # the loss of every LOSS_EVERY-th step is kept
            pending.append(loss.detach())
            if not levers.no_host_sync:
                read_losses()
        if step % LOG_EVERY == 0:
            read_losses()
            vals = recent[-(LOG_EVERY // LOSS_EVERY) :]
            log(f"transformer step {step} loss {sum(vals) / max(1, len(vals)):.4f} ({time.time() - started:.0f}s)")
        if on_step is not None:
            on_step(step)
    read_losses()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the steps queued last have run
    seconds_run = time.time() - started
    models["text_encoder"], models["text_encoder_2"], models["transformer"] = ema
    vals = recent[-(FINAL_LOSS_STEPS // LOSS_EVERY) :]
    return {"steps": step, "seconds": seconds_run, "batch": batch, "lr": lr, "guidance": GUIDANCE,
            "t5_lengths": list(t5_lengths), "weighting": weighting, "object_weight": object_weight,
            "outline_weight": outline_weight, "caption_dropout": CAPTION_DROPOUT,
            "final_loss": sum(vals) / max(1, len(vals)) if vals else None, "levers": levers.as_dict(),
            "images_per_second": step * batch / max(seconds_run, 1e-9)}


def save_pipeline(models, out: str) -> int:
    import torch

    pipe = make_pipeline(models)
    pipe.to("cpu", torch.bfloat16)  # FLUX.1's own dtype (T5 overflows in fp16)
    return tiny_base.save_pipeline(pipe, out)


def sampling_lengths(t5_lengths) -> tuple[int, ...]:
    """The T5 lengths to sample a base trained at t5_lengths (its training cycle) at: the distinct
    ones, longest first, at most two; [0] is the main one, [-1] the fast one (512,128 and
    512,128,64,64 -> 512,128; 32 -> 32)."""
    return tuple(sorted({int(n) for n in t5_lengths}, reverse=True)[:2])


def base_t5_lengths(base: str) -> tuple[int, ...]:
    """The T5 lengths the toy FLUX.1 base folder `base` was trained at: its toyworld.json's
    transformer.t5_lengths (train_transformer's record), T5_LENGTHS for a folder without one."""
    from loraspec_worker.protocol import WorkerError

    path = os.path.join(base, "toyworld.json")
    if not os.path.exists(path):
        return T5_LENGTHS
    with open(path, encoding="utf-8") as f:
        lengths = json.load(f).get("transformer", {}).get("t5_lengths", T5_LENGTHS)
    if not lengths or not all(isinstance(n, int) and n > 0 for n in lengths):
        raise WorkerError("E_USAGE", f"{path}: transformer.t5_lengths must be positive integers, got {lengths!r}")
    return tuple(lengths)


def base_sampling_length(base: str) -> int:
    """The fast T5 length to sample (or train a LoRA on) the toy FLUX.1 base at: the shorter of
    its sampling lengths (128 for the committed base, trained at 512 and 128)."""
    return sampling_lengths(base_t5_lengths(base))[-1]


def sampling_kwargs(true_cfg: float, t5_length: int) -> dict:
    """FluxPipeline arguments for the toy base: 64x64, T5 padded to t5_length (one the base was
    trained at: sampling_lengths), the trained guidance value, true CFG against the empty prompt
    when true_cfg > 1."""
    kw = {"height": 64, "width": 64, "max_sequence_length": t5_length}
    if true_cfg > 1:
        kw |= {"true_cfg_scale": true_cfg, "negative_prompt": ""}
    return kw


def evaluate_lengths(pipe, judge, prompts, trained_lengths, grid=None, log=print) -> dict:
    """The judge on the samples of a base trained at trained_lengths, at its sampling_lengths: the
    main one with true CFG and without, the fast one (when another) without."""
    lengths = sampling_lengths(trained_lengths)
    out = {"samples": evaluate_base(pipe, judge, prompts, steps=28, guidance=GUIDANCE, save_grid=grid,
                                    extra=sampling_kwargs(EVAL_TRUE_CFG, lengths[0]))}
    log(f"judge on {len(prompts)} base samples, true CFG {EVAL_TRUE_CFG}, T5 {lengths[0]}: {json.dumps(out['samples'])}")
    out["samples_no_cfg"] = evaluate_base(pipe, judge, prompts, steps=28, guidance=GUIDANCE, extra=sampling_kwargs(1.0, lengths[0]))
    log(f"judge on {len(prompts)} base samples, no CFG (sample.py's default): {json.dumps(out['samples_no_cfg'])}")
    for length in lengths[1:]:
        out[f"samples_no_cfg_t5_{length}"] = evaluate_base(pipe, judge, prompts, steps=28, guidance=GUIDANCE, extra=sampling_kwargs(1.0, length))
        log(f"... at max_sequence_length {length}: {json.dumps(out[f'samples_no_cfg_t5_{length}'])}")
    return out


def run(args) -> dict:
    import torch

    from . import judge as judge_mod
    from loraspec_worker.train import disable_cudnn_sdpa

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        disable_cudnn_sdpa()  # NaN gradients on FLUX attention shapes (train.py)
    workers = args.workers or os.cpu_count() or 1
    log = lambda m: print(m, flush=True)  # noqa: E731
    report: dict = {"arch": "flux1", "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__}
    t0 = time.time()

    masks = None
    if args.object_weight > 0:
        images, captions, masks = render_base_images(args.images, workers, report, log, masks=True)
    else:
        images, captions = render_base_images(args.images, workers, report, log)
    bands = None
    if args.outline_weight > 0:
        from .outline import render_bands

        bands = render_bands(args.images, workers, report, log)

    # The VAE also trains on scenes with every fill (a general codec; seeds after the base set's),
    # so the txst style's stripes can be drawn; the transformer sees the base world only.
    codec_count = args.vae_codec_images
    vae_images = images
    if codec_count:
        codec, _ = make_base_dataset(args.images, codec_count, workers, scenes=CODEC_SCENES)
        vae_images = torch.cat([images, torch.from_numpy(codec).permute(0, 3, 1, 2)])
        report["dataset"]["codec_images"] = codec_count

    shape = {"heads": args.flux_heads, "double_layers": args.flux_double, "single_layers": args.flux_single,
             "vae_levels": {4: 3, 2: 2}[args.vae_downscale]}
    models = build_models(args.seed, **shape)
    report["build"] = shape
    report["vae"] = train_vae(models["vae"], vae_images, device=device, steps=args.vae_steps, seconds=args.vae_seconds, shift=True, log=log)
    if os.path.exists(os.path.join(args.judge_out, "judge.safetensors")):
        from .shape_probe import vae_roundtrip

        judge = judge_mod.Judge(args.judge_out, device=str(device))
        report["vae"]["style_roundtrip"] = style_roundtrip(models["vae"], judge)
        log(f"vae: the judge reads {report['vae']['style_roundtrip']:.0%} of the style's images in the style after the round trip")
        report["vae"]["shape_roundtrip"] = vae_roundtrip(models["vae"], judge)
        log(f"vae: the judge's shape accuracy on held-out scenes after the round trip {json.dumps(report['vae']['shape_roundtrip'])}")
    levers = Levers.from_args(args)
    report["transformer"] = train_transformer(models, images, captions, device=device, steps=args.transformer_steps,
                                              seconds=args.transformer_seconds, batch=args.batch, lr=scaled_lr(args.lr, args.batch, args.lr_rule),
                                              t5_lengths=args.t5_lengths, weighting=args.weighting,
                                              masks=masks, object_weight=args.object_weight, bands=bands,
                                              outline_weight=args.outline_weight, levers=levers, log=log)
    report["transformer"]["lr_rule"] = args.lr_rule
    record_saved(report, models, ("transformer", "vae", "text_encoder", "text_encoder_2"), save_pipeline(models, args.out), args.out, t0, log)

    if args.eval > 0 and os.path.exists(os.path.join(args.judge_out, "judge.safetensors")):
        from diffusers import FluxPipeline

        pipe = FluxPipeline.from_pretrained(args.out, torch_dtype=torch.float32).to(device)
        pipe.set_progress_bar_config(disable=True)
        judge = judge_mod.Judge(args.judge_out, device=str(device))
        t = time.time()
        report |= evaluate_lengths(pipe, judge, eval_prompts(args.eval), report["transformer"]["t5_lengths"], args.grid, log)
        report["eval_seconds"] = time.time() - t
    with open(os.path.join(args.out, "toyworld.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return report
