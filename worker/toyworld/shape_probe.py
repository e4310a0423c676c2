"""What limits the toy FLUX.1 base's shapes (issue 23)? Four cheap looks on a saved base, each
read by the judge or by the base's own loss (bench/RESULTS.md, "What limits the toy FLUX.1 base's
shapes"):

  vae        the judge's shape accuracy on held-out scenes before and after the VAE's round trip,
             by object size: if the VAE loses shapes, no transformer can draw them
  samples    the judge on the base's own samples (no CFG, the base's fast T5 length: 128 for the
             committed base), by size, with what it reads when it misses (blobs read as circles,
             or another crisp shape?)
  text       a linear probe (logistic regression) for the prompt's shape word on the text
             encoders' outputs (CLIP pooled; T5 mean over the prompt's tokens): is the word there?
  loss_gap   the transformer's velocity loss on held-out images at fixed noise levels with the true
             caption, with the shape word swapped, and with the colour word swapped: how much the
             model's prediction depends on each word, per noise level

`PYTHONPATH=worker python -m toyworld shape-probe --base models/toy-flux1` prints the JSON.
"""

from __future__ import annotations

import random

from . import world
from .train_base import BASE_SCENES, eval_prompts

PROBE_SEED = 910_000_000  # held-out scenes (train uses 0.., eval_prompts 900M..)
SIGMAS = (0.2, 0.4, 0.6, 0.8, 0.95)


def _scenes(count: int, seed: int = PROBE_SEED):
    return [world.random_scene(seed + i, **{**BASE_SCENES, "two_objects": 0.0}) for i in range(count)]


def _pixels(scenes):
    import numpy as np
    import torch

    x = np.stack([np.asarray(world.render(s), dtype=np.float32) for s in scenes])
    return torch.from_numpy(x).permute(0, 3, 1, 2) / 127.5 - 1


def _to_pil(x):
    from PIL import Image

    return [Image.fromarray(((t.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).byte().numpy()) for t in x]


def _by_size(truths, oks) -> dict:
    out = {}
    for size in world.SIZES:
        hits = [ok for t, ok in zip(truths, oks) if t["size"] == size]
        out[size] = round(sum(hits) / max(1, len(hits)), 3)
    return out | {"all": round(sum(oks) / max(1, len(oks)), 3), "n": len(oks)}


def vae_roundtrip(vae, judge, count: int = 240) -> dict:
    """The judge's shape accuracy on held-out single-object scenes and on their round trips (the
    latent distribution's mode, as the trainer encodes), by size."""
    import torch

    scenes = _scenes(count)
    truths = [world.labels(s) for s in scenes]
    x = _pixels(scenes)
    with torch.no_grad():
        y = torch.cat([vae.decode(vae.encode(x[i : i + 60].to(vae.device, vae.dtype)).latent_dist.mode()).sample.float().cpu()
                       for i in range(0, count, 60)])
    result = {"mae_255": round(float((y.clamp(-1, 1) - x).abs().mean() * 127.5), 2)}
    for name, images in (("original", _to_pil(x)), ("roundtrip", _to_pil(y))):
        reads = judge.read(images)
        result[name] = _by_size(truths, [t["shapes"][0] in r["shapes"] for t, r in zip(truths, reads)])
    return result


def samples_by_size(pipe, judge, t5_length: int, count: int = 48, steps: int = 28) -> dict:
    """t5_length: one the base trained at (train_flux.base_sampling_length)."""
    import torch

    from .train_flux import GUIDANCE, sampling_kwargs

    prompts = eval_prompts(count)
    images = []
    for i in range(0, count, 16):
        chunk = prompts[i : i + 16]
        gen = torch.Generator(device="cpu").manual_seed(i)
        images += pipe(prompt=[p for p, _ in chunk], num_inference_steps=steps, guidance_scale=GUIDANCE, generator=gen,
                       **sampling_kwargs(1.0, t5_length)).images
    reads = judge.read(images)
    truths = [t for _, t in prompts]
    oks = [t["shapes"][0] in r["shapes"] for t, r in zip(truths, reads)]
    misses: dict = {}
    for t, r, ok in zip(truths, reads, oks):
        if not ok:
            key = "+".join(r["shapes"]) or "none"
            misses[key] = misses.get(key, 0) + 1
    colour = [t["colours"][0] in r["colours"] for t, r in zip(truths, reads)]
    return {"shape": _by_size(truths, oks), "colour": _by_size(truths, colour), "misses_read_as": misses}


def _encode(pipe, prompts, length: int = 128):
    import torch

    from .train_flux import encode_text

    clip = pipe.tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    t5 = pipe.tokenizer_2(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        out = encode_text(pipe.text_encoder, pipe.text_encoder_2, clip, t5)
    mask = (t5 != 0).float().unsqueeze(-1)
    return out, (out["embeds"] * mask).sum(1) / mask.sum(1)


def _probe_accuracy(train_x, train_y, test_x, test_y, classes: int, epochs: int = 300) -> float:
    """Held-out accuracy of a multinomial logistic regression (full-batch Adam, standardised inputs)."""
    import torch

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    lin = torch.nn.Linear(a.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(lin(a), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return round(float((lin(b).argmax(1) == test_y).float().mean()), 3)


def text_probe(pipe, train: int = 1500, test: int = 500) -> dict:
    """Shape and colour probes on the text path, natural and tag captions mixed."""
    import torch

    scenes = _scenes(train + test, seed=PROBE_SEED + 1_000_000)
    rng = random.Random(0)
    prompts = [world.natural_caption(s) if rng.random() < 0.5 else world.tags_caption(s) for s in scenes]
    out, t5_mean = _encode(pipe, prompts)
    feats = {"clip_pooled": out["pooled"], "t5_mean": t5_mean}
    result = {}
    for label, names in (("shape", world.SHAPES), ("colour", world.COLOUR_NAMES)):
        y = torch.tensor([names.index(getattr(s.objects[0], label)) for s in scenes])
        for name, f in feats.items():
            result[f"{label}_{name}"] = _probe_accuracy(f[:train], y[:train], f[train:], y[train:], len(names))
    return result | {"chance_shape": round(1 / len(world.SHAPES), 3), "chance_colour": round(1 / len(world.COLOUR_NAMES), 3)}


def _swap(scene, field: str, rng):
    import copy

    s = copy.deepcopy(scene)
    o = s.objects[0]
    names = world.SHAPES if field == "shape" else world.COLOUR_NAMES
    setattr(o, field, rng.choice([n for n in names if n != getattr(o, field)]))
    return s


def encode_latents(pipe, scenes, chunk: int | None = None):
    """The scenes' VAE latents (the distribution's mode, shifted and scaled as the transformer saw them), `chunk`
    scenes per encode (None: all at once)."""
    import torch

    vae = pipe.vae
    step = chunk or max(len(scenes), 1)
    with torch.no_grad():
        return torch.cat([(vae.encode(_pixels(scenes[i : i + step])).latent_dist.mode() - vae.config.shift_factor) * vae.config.scaling_factor
                          for i in range(0, len(scenes), step)])


def velocity(pipe, z, noise, sigma: float, text: dict):
    """The transformer's packed velocity prediction for latents `z` noised to `sigma` with `noise` (guidance 1.0)."""
    import torch
    from diffusers import FluxPipeline

    from loraspec_worker.train.arches.flow import pack_2x2

    b, _, h, w = z.shape
    img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, z.device, z.dtype)
    noisy = (1 - sigma) * z + sigma * noise
    with torch.no_grad():
        return pipe.transformer(hidden_states=pack_2x2(noisy), timestep=torch.full((b,), sigma), guidance=torch.full((b,), 1.0),
                                pooled_projections=text["pooled"], encoder_hidden_states=text["embeds"], txt_ids=text["text_ids"],
                                img_ids=img_ids, return_dict=False)[0]


def loss_gap(pipe, count: int = 96, sigmas=SIGMAS, length: int = 128) -> dict:
    """Velocity loss per noise level (fixed noise per image) for the true, shape-swapped and
    colour-swapped captions (T5 padded to length); the swaps' excess over the true caption is what
    each word is worth."""
    import torch

    from loraspec_worker.train.arches.flow import unpack_2x2

    rng = random.Random(1)
    scenes = _scenes(count, seed=PROBE_SEED + 2_000_000)
    swapped = {f: [_swap(s, f, rng) for s in scenes] for f in ("shape", "colour")}
    z = encode_latents(pipe, scenes)
    # what a word could be worth: the latents' own mean squared change when the scene's shape
    # (colour) is swapped, same background, place, size and rotation
    image_change = {f: round(float(((encode_latents(pipe, g) - z) ** 2).mean()), 4) for f, g in swapped.items()}
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(5))
    captions = {"true": [world.natural_caption(s) for s in scenes],
                "shape_swapped": [world.natural_caption(s) for s in swapped["shape"]],
                "colour_swapped": [world.natural_caption(s) for s in swapped["colour"]],
                "empty": [""] * count}
    texts = {k: _encode(pipe, v, length)[0] for k, v in captions.items()}
    _, _, h, w = z.shape
    rows = []
    for s in sigmas:
        row = {"sigma": s}
        for k, t in texts.items():
            pred = velocity(pipe, z, noise, s, t)
            row[k] = round(float(((unpack_2x2(pred, h, w) - (noise - z)) ** 2).mean()), 4)
        rows.append(row)
    return {"count": count, "t5_length": length, "latent_change_when_swapped": image_change, "rows": rows}


def run(base: str, judge_dir: str, parts=("vae", "text", "loss_gap", "samples"), samples: int = 48, t5_length: int | None = None) -> dict:
    """t5_length: of the loss gaps and the samples; None is the base's own (train_flux.base_sampling_length)."""
    import torch
    from diffusers import FluxPipeline

    from .judge import Judge
    from .train_flux import base_sampling_length

    t5_length = t5_length or base_sampling_length(base)

    torch.manual_seed(0)
    pipe = FluxPipeline.from_pretrained(base, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    judge = Judge(judge_dir)
    out = {}
    if "vae" in parts:
        out["vae"] = vae_roundtrip(pipe.vae, judge)
    if "text" in parts:
        out["text"] = text_probe(pipe)
    if "loss_gap" in parts:
        out["loss_gap"] = loss_gap(pipe, length=t5_length)
    if "samples" in parts:
        out["samples"] = samples_by_size(pipe, judge, t5_length, samples)
    return out
