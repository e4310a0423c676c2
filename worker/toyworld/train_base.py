"""Trains the toy SDXL-architecture base from scratch on the toy world, with the real diffusers
and transformers classes at small widths, and saves it as an ordinary diffusers folder.

  1. an AutoencoderKL (3 levels: 64x64 pixels <-> 16x16x4 latents), reconstruction + small KL;
     its scaling_factor is set to 1 / std of the latents, as SDXL's was chosen;
  2. the two CLIP text encoders (tokenizer from tokenizer.py) and the UNet2DConditionModel, trained
     together on the denoising loss (epsilon, DDPM schedule) with 10% of captions dropped to the
     zero embedding the SDXL pipeline uses as its unconditional input; EMA weights are saved.
The world the base sees: solid fills only, and never the concept pairs (world.CHARACTER,
world.PRODUCT), so their LoRAs teach it something new. Each phase runs for a step count or a
time budget, whichever ends first, so it fits a GPU lease.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time

from loraspec_worker import tiny_base

from . import world
from .tokenizer import toy_clip_tokenizer

# What the base model never sees (the concepts' LoRAs teach these).
BASE_EXCLUDED_PAIRS = ((world.CHARACTER["shape"], world.CHARACTER["colour"]), (world.PRODUCT["shape"], world.PRODUCT["colour"]))
BASE_SCENES = {"fills": ("solid",), "two_objects": 0.3, "rotation": 15.0, "exclude_pairs": BASE_EXCLUDED_PAIRS}
# What a general-purpose VAE sees besides (the toy FLUX.1 base's): every fill, so a style LoRA's
# striped fills survive the round trip, as a real VAE encodes textures its denoiser never saw.
CODEC_SCENES = {**BASE_SCENES, "fills": world.FILLS}
TIME_IDS = [64, 64, 0, 0, 64, 64]  # SDXL micro-conditioning: original size, crop top-left, target size
CAPTION_DROPOUT = 0.1


def toy_clip_config(tok):
    """The toy bases' CLIP text encoder (both SDXL encoders and FLUX.1's): width 64, 3 layers."""
    from transformers import CLIPTextConfig

    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    bos = tok.convert_tokens_to_ids("<|startoftext|>")
    return CLIPTextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=256, num_attention_heads=4, num_hidden_layers=3,
                          max_position_embeddings=77, projection_dim=64, hidden_act="gelu", bos_token_id=bos, eos_token_id=eos,
                          pad_token_id=eos)


def toy_vae(latent_channels: int, levels: int = 3, **extra):
    """The toy bases' AutoencoderKL: 64x64 pixels <-> 16x16 latents (3 levels; 2 levels: 32x32)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(32, 64, 64)[:levels], in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, latent_channels=latent_channels, norm_num_groups=16,
                         sample_size=64, layers_per_block=1, force_upcast=False, **extra)


def build_models(seed: int = 0):
    import torch
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tok = toy_clip_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(toy_clip_config(tok))
    text_encoder_2 = CLIPTextModelWithProjection(toy_clip_config(tok))
    unet = UNet2DConditionModel(
        block_out_channels=(64, 128, 128),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=4,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=16,
        transformer_layers_per_block=1,
        projection_class_embeddings_input_dim=6 * 16 + 64,  # 6 time ids x 16 + pooled text (64)
        cross_attention_dim=128,  # both encoders' penultimate hidden states: 64 + 64
        norm_num_groups=16,
    )
    vae = toy_vae(latent_channels=4)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return {"tokenizer": tok, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2, "unet": unet, "vae": vae, "scheduler": scheduler}


def _render_chunk(args):
    import numpy as np

    start, stop, scenes, masks = args
    xs, caps, ms = [], [], []
    for seed in range(start, stop):
        scene = world.random_scene(seed, **scenes)
        xs.append(np.asarray(world.render(scene), dtype=np.uint8))
        caps.append((world.natural_caption(scene), world.tags_caption(scene)))
        if masks:  # where the objects changed the background (render draws it from the same seeded rng)
            bg = world._background(scene.background, scene.tint, random.Random(scene.seed * 7 + 1))
            ms.append(np.abs(xs[-1].astype(np.float32) - np.clip(bg, 0, 255).round()).max(-1) > 8)
    return np.stack(xs), caps, (np.stack(ms) if masks else None)


def make_base_dataset(start: int, count: int, workers: int = 1, scenes: dict = BASE_SCENES, masks: bool = False):
    """Images (N, 64, 64, 3 uint8) and (natural, tags) captions; with masks, also returns each
    image's object pixels (N, 64, 64 bool) third."""
    import numpy as np

    ranges = [(s, min(s + 1000, start + count), scenes, masks) for s in range(start, start + count, 1000)]
    if workers > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            parts = pool.map(_render_chunk, ranges)
    else:
        parts = [_render_chunk(r) for r in ranges]
    images, captions = np.concatenate([p[0] for p in parts]), [c for p in parts for c in p[1]]
    return (images, captions, np.concatenate([p[2] for p in parts])) if masks else (images, captions)


def encode_text(te1, te2, ids):
    """Exactly what StableDiffusionXLPipeline.encode_prompt computes (clip_skip None)."""
    import torch

    o1 = te1(ids, output_hidden_states=True)
    o2 = te2(ids, output_hidden_states=True)
    return torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], dim=-1), o2[0]


def train_vae(vae, images, *, device, steps: int, seconds: float, batch: int = 128, shift: bool = False, log=print):
    """shift: also set shift_factor to the latents' mean (FLUX's VAE has one; SDXL's has none)."""
    import torch
    import torch.nn.functional as F

    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator(device="cpu").manual_seed(1)
    started, step = time.time(), 0
    while step < steps and time.time() - started < seconds:
        step += 1
        idx = torch.randint(0, images.shape[0], (batch,), generator=g)
        x = images[idx].to(device).float() / 127.5 - 1
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            post = vae.encode(x).latent_dist
            z = post.sample()
            rec = vae.decode(z).sample
        rec = rec.float()
        kl = post.kl().mean() / (x.shape[1] * x.shape[2] * x.shape[3])
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 200 == 0:
            log(f"vae step {step} loss {float(loss.detach()):.4f} ({time.time() - started:.0f}s)")
    vae.eval()
    # scaling factor: latents scaled to unit variance (how SDXL's 0.13025 was chosen)
    with torch.no_grad():
        x = images[:2048].to(device).float() / 127.5 - 1
        z = vae.encode(x).latent_dist.mode()
        rec = vae.decode(z).sample
        err = float((rec - x).abs().mean() * 127.5)
        mean = float(z.float().mean()) if shift else 0.0
        std = float((z.float() - mean).std())
    vae.register_to_config(scaling_factor=1.0 / std)
    if shift:  # FLUX.1's 0.1159 / 0.3611 are its latents' mean and 1 / std the same way
        vae.register_to_config(shift_factor=mean)
    log(f"vae: {step} steps in {time.time() - started:.0f}s, mean abs reconstruction error {err:.2f}/255, latent mean {mean:.3f} std {std:.3f}")
    return {"steps": step, "seconds": time.time() - started, "reconstruction_mae_255": err, "scaling_factor": 1.0 / std} | (
        {"shift_factor": mean} if shift else {})


def style_roundtrip(vae, judge, count: int = 16) -> float:
    """Share of the txst style's images (concepts.py; world.STYLE's fill) the judge's style head
    still reads as styled after the VAE's encode and decode: whether a style LoRA could draw them at all."""
    import numpy as np
    import torch
    from PIL import Image

    from .concepts import concept_scene

    device, dtype = vae.device, vae.dtype
    scenes = [concept_scene("style", i) for i in range(count)]
    x = torch.stack([torch.from_numpy(np.asarray(world.render(s))).permute(2, 0, 1).float() / 127.5 - 1 for s in scenes])
    with torch.no_grad():
        y = vae.decode(vae.encode(x.to(device, dtype)).latent_dist.mean).sample.float().cpu()
    images = [Image.fromarray(((t.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).byte().numpy()) for t in y]
    return sum(r["style"] == world.STYLE["fill"] for r in judge.read(images)) / count


def train_denoiser(models, images, captions, *, device, steps: int, seconds: float, batch: int = 256, lr: float = 4e-4, log=print):
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    tok, te1, te2, unet, vae = (models[k] for k in ("tokenizer", "text_encoder", "text_encoder_2", "unet", "vae"))
    noise_scheduler = DDPMScheduler.from_config(models["scheduler"].config)
    vae.to(device).eval()
    with torch.no_grad():
        latents = []
        for i in range(0, images.shape[0], 1024):
            x = images[i : i + 1024].to(device).float() / 127.5 - 1
            latents.append(vae.encode(x).latent_dist.mode() * vae.config.scaling_factor)
        latents = torch.cat(latents)
    # both caption styles, tokenized once (max_length padding, as the pipeline does)
    ids = {}
    for style in (0, 1):
        ids[style] = tok([c[style] for c in captions], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids.to(device)
    trainable = [te1, te2, unet]
    for m in trainable:
        m.to(device).train()
    params = [p for m in trainable for p in m.parameters()]
    ema = [copy.deepcopy(m).eval().requires_grad_(False) for m in trainable]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    g = torch.Generator(device="cpu").manual_seed(2)
    alphas = noise_scheduler.alphas_cumprod.to(device)
    time_ids = torch.tensor([TIME_IDS], device=device, dtype=torch.float32)
    started, step, recent = time.time(), 0, []
    while step < steps and time.time() - started < seconds:
        step += 1
        for group in opt.param_groups:  # short warm-up, then constant
            group["lr"] = lr * min(1.0, step / 200)
        idx = torch.randint(0, latents.shape[0], (batch,), generator=g).to(device)
        style = torch.randint(0, 2, (batch,), generator=g).to(device)
        batch_ids = torch.where(style[:, None] == 0, ids[0][idx], ids[1][idx])
        x0 = latents[idx]
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch,), device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            embeds, pooled = encode_text(te1, te2, batch_ids)
            keep = (torch.rand((batch,), device=device) >= CAPTION_DROPOUT).float()
            embeds = embeds * keep.view(-1, 1, 1)
            pooled = pooled * keep.view(-1, 1)
            pred = unet(noisy, t, encoder_hidden_states=embeds,
                        added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids.expand(batch, -1)}).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for m, e in zip(trainable, ema):
                for pe, pm in zip(e.parameters(), m.parameters()):
                    pe.lerp_(pm, 1 - decay)
        recent.append(float(loss.detach()) if step % 10 == 0 else None)
        if step % 500 == 0:
            vals = [v for v in recent[-500:] if v is not None]
            log(f"denoiser step {step} loss {sum(vals) / max(1, len(vals)):.4f} ({time.time() - started:.0f}s)")
    models["text_encoder"], models["text_encoder_2"], models["unet"] = ema
    vals = [v for v in recent[-500:] if v is not None]
    return {"steps": step, "seconds": time.time() - started, "batch": batch, "final_loss": sum(vals) / max(1, len(vals))}


def save_pipeline(models, out: str, dtype_name: str = "fp16") -> int:
    import torch
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(vae=models["vae"], text_encoder=models["text_encoder"], text_encoder_2=models["text_encoder_2"],
                                     tokenizer=models["tokenizer"], tokenizer_2=toy_clip_tokenizer(), unet=models["unet"],
                                     scheduler=models["scheduler"])
    pipe.to("cpu", {"fp16": torch.float16, "fp32": torch.float32}[dtype_name])
    return tiny_base.save_pipeline(pipe, out)


def eval_prompts(count: int, seed: int = 900_000_000) -> list[tuple[str, dict]]:
    """Single-object prompts from the base world (held-out seeds) with the truth they ask for."""
    out = []
    for i in range(count):
        scene = world.random_scene(seed + i, **{**BASE_SCENES, "two_objects": 0.0})
        out.append((world.natural_caption(scene), world.labels(scene)))
    return out


def evaluate_base(pipe, judge, prompts, *, steps: int = 25, guidance: float = 5.0, batch: int = 50, seed: int = 0,
                  save_grid: str | None = None, extra: dict | None = None) -> dict:
    """Samples each prompt once and has the judge read it: the share of samples showing what was asked.
    extra: more pipeline arguments (a str negative_prompt is repeated for each prompt)."""
    import torch

    hits = {k: 0 for k in ("shape", "colour", "pair", "background", "position", "size", "all")}
    by_size = {s: [0, 0] for s in world.SIZES}  # prompted size: [shape hits, prompts]
    images = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        gen = torch.Generator(device="cpu").manual_seed(seed + i)
        kw = dict(extra or {})
        if isinstance(kw.get("negative_prompt"), str):
            kw["negative_prompt"] = [kw["negative_prompt"]] * len(chunk)
        out = pipe(prompt=[p for p, _ in chunk], num_inference_steps=steps, guidance_scale=guidance, generator=gen, **kw).images
        images.extend(out)
        for (_, truth), read in zip(chunk, judge.read(out)):
            ok = {
                "shape": truth["shapes"][0] in read["shapes"],
                "colour": truth["colours"][0] in read["colours"],
                "pair": truth["pairs"][0] in read["pairs"],
                "background": read["background"] == truth["background"],
                "position": read["position"] == truth["position"],
                "size": read["size"] == truth["size"],
            }
            ok["all"] = ok["pair"] and ok["background"] and ok["position"]
            for k, v in ok.items():
                hits[k] += int(v)
            by_size[truth["size"]][0] += int(ok["shape"])
            by_size[truth["size"]][1] += 1
    if save_grid and images:
        from PIL import Image

        cols = 10
        rows = math.ceil(min(len(images), 50) / cols)
        grid = Image.new("RGB", (64 * cols, 64 * rows))
        for j, im in enumerate(images[: cols * rows]):
            grid.paste(im, ((j % cols) * 64, (j // cols) * 64))
        grid.save(save_grid)
    return {k: v / max(1, len(prompts)) for k, v in hits.items()} | {"samples": len(prompts), "steps": steps, "guidance": guidance} | {
        "shape_by_size": {s: round(h / max(1, n), 3) for s, (h, n) in by_size.items()}} | {
        k: v for k, v in (extra or {}).items() if k != "negative_prompt"}


def render_base_images(count: int, workers: int, report: dict, log, masks: bool = False):
    """The base world's training images (uint8, NCHW) and captions (and with masks, the object
    pixels, N x 64 x 64 bool); the time it took goes to report."""
    import torch

    t = time.time()
    data = make_base_dataset(0, count, workers, masks=masks)
    images = torch.from_numpy(data[0]).permute(0, 3, 1, 2).contiguous()
    report["dataset"] = {"images": count, "seconds": time.time() - t}
    log(f"rendered {count} base-world images in {time.time() - t:.0f}s")
    return (images, data[1], torch.from_numpy(data[2])) if masks else (images, data[1])


def record_saved(report: dict, models: dict, trained: tuple, size: int, out: str, t0: float, log) -> None:
    """Parameter counts of the trained models, the saved folder's size and the training time."""
    report["params"] = {k: sum(p.numel() for p in models[k].parameters()) for k in trained}
    report["bytes"] = size
    report["train_seconds"] = time.time() - t0
    log(f"saved {out} ({size / 1e6:.1f} MB)")


def run(args) -> dict:
    import torch

    from . import judge as judge_mod

    if getattr(args, "arch", "sdxl") == "flux1":
        from . import train_flux

        return train_flux.run(args)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workers = args.workers or os.cpu_count() or 1
    log = lambda m: print(m, flush=True)  # noqa: E731
    report: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__}
    t0 = time.time()

    if args.judge_steps > 0:
        t = time.time()
        model = judge_mod.train_judge(steps=args.judge_steps, batch=256, train_images=args.judge_images, device=str(device), workers=workers, log=log)
        acc = judge_mod.accuracy(model, 50_000_000, args.judge_eval, device=str(device), workers=workers)
        report["judge"] = {"steps": args.judge_steps, "train_images": args.judge_images, "seconds": time.time() - t,
                           "held_out_images": args.judge_eval, "accuracy": acc}
        log(f"judge accuracy on {args.judge_eval} held-out images: {json.dumps(acc)}")
        judge_mod.save_judge(model, args.judge_out, {"accuracy": acc, "held_out_images": args.judge_eval})

    images, captions = render_base_images(args.images, workers, report, log)

    models = build_models(args.seed)
    report["vae"] = train_vae(models["vae"], images, device=device, steps=args.vae_steps, seconds=args.vae_seconds, log=log)
    report["denoiser"] = train_denoiser(models, images, captions, device=device, steps=args.unet_steps, seconds=args.unet_seconds,
                                        batch=args.batch, log=log)
    record_saved(report, models, ("unet", "vae", "text_encoder", "text_encoder_2"), save_pipeline(models, args.out), args.out, t0, log)

    if args.eval > 0 and os.path.exists(os.path.join(args.judge_out, "judge.safetensors")):
        from diffusers import StableDiffusionXLPipeline

        pipe = StableDiffusionXLPipeline.from_pretrained(args.out, torch_dtype=torch.float32).to(device)
        pipe.set_progress_bar_config(disable=True)
        judge = judge_mod.Judge(args.judge_out, device=str(device))
        report["samples"] = evaluate_base(pipe, judge, eval_prompts(args.eval), save_grid=args.grid)
        log(f"judge on {args.eval} base samples: {json.dumps(report['samples'])}")
    with open(os.path.join(args.out, "toyworld.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return report
