"""Does a style that lives at the image's edge, where the character is not, keep its effect stacked?
(issue 23, h/framestyle; bench/RESULTS.md, "A frame style on the toy SDXL base").

  styles     candidate txst styles drawn over the style concept's scenes (concepts.py `style`, solid
             fills): `frame` a black band 4 px wide around the edge (style_probe.frame), `vignette`
             the edge darkened to x 0.45 fading to none 12 px in (style_probe.edge_darken)
  darkness   the pixel measure: 255 minus the median luminance of the outer 4 px band (a drawn black
             frame >= 239; the world's own edges 33-168 on sky, grass and indoor, ~235 on night)
  separable  the measure on the generator's plain and styled scenes after the toy VAE's round trip:
             the best threshold and its accuracy (how trivial a judge head for the style would be)
  stack      LoRAs trained on each style's dataset with the stack's recipes, sampled on the stack's
             prompts (stack.prompts) for the base, txcl at 0.5, txst at 0.3, 0.5 and 1.0 and txcl 0.5
             with txst 0.3 and 0.5: darkness per sample, its mean, the samples over the threshold,
             the judge's cyan reads; a PNG per LoRA and seed set (a row per condition) in DIR/grids

  teach_vae  a copy of the base whose VAE is fine-tuned on plain and framed scenes, the plain
             scenes' latents anchored to the old encoder's and a framed scene's inner latent cells
             to its plain scene's: the toy VAE then draws a frame locally, and the UNet (unchanged)
             still finds its latents

`PYTHONPATH=worker python -m toyworld frame-probe --out DIR [--base DIR]` prints JSON lines;
`python -m toyworld frame-vae --out DIR` writes the base copy with the frame-taught VAE.
"""

from __future__ import annotations

import copy
import json
import os

from . import concepts, style_probe, world

BAND = 4  # px: the measure's band, one latent cell of the toy VAE (4x downscale)
STYLES = {
    "frame": lambda s: style_probe.frame(s, 4),
    "vignette": lambda s: style_probe.edge_darken(s, 12, soft=True),
}
RING_CELLS = {"frame": 1, "vignette": 3}  # latent cells (4 px each) each style's band covers
# (images, steps, learning rate): the stack's style recipe and the converged one (bench/RESULTS.md,
# "Why the style does not shade cyan")
RECIPES = {"20 img": (20, 300, 3e-3), "60 img": (60, 1500, 1e-3), "20 img lr 1e-2": (20, 300, 1e-2)}


def darkness(image) -> float:
    import numpy as np

    a = np.asarray(image, np.float32)
    lum = a @ np.array((0.299, 0.587, 0.114), np.float32)
    return float(255 - np.median(lum[style_probe.edge_distance(a.shape[0]) < BAND]))


def styled_scene(style: str, i: int):
    """(image array, caption) of the style dataset's i-th scene, objects solid, the style drawn."""
    scene = concepts.concept_scene("style", i)
    for o in scene.objects:
        o.fill = "solid"
    return STYLES[style](copy.deepcopy(scene)), concepts.concept_caption("style", scene)


def write_dataset(folder: str, style: str, count: int) -> str:
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        img, caption = styled_scene(style, i)
        Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8)).save(os.path.join(folder, f"{i:03d}.png"))
        with open(os.path.join(folder, f"{i:03d}.txt"), "w", encoding="utf-8") as f:
            f.write(caption + "\n")
    return folder


def separable(vae, style: str, count: int = 200, start: int = 8_200_000) -> dict:
    """The darkness of plain and styled generator scenes after the round trip, and the threshold
    that best separates them (midpoints between sorted values) with its accuracy."""
    import numpy as np
    import torch

    from .style_head import roundtrip

    scenes = [world.random_scene(start + i, two_objects=0.2) for i in range(count)]
    plain = np.stack([np.asarray(world.render(s), np.float32) for s in scenes])
    styled = np.stack([STYLES[style](copy.deepcopy(s)) for s in scenes])
    out = {}
    for name, imgs in (("plain", plain), ("styled", styled)):
        x = torch.from_numpy(imgs / 255).permute(0, 3, 1, 2).contiguous()
        back = (roundtrip(vae, x).permute(0, 2, 3, 1).numpy() * 255).round()
        out[name] = np.array([darkness(b) for b in back])
    values = np.sort(np.concatenate([out["plain"], out["styled"]]))
    best = max(((v + w) / 2 for v, w in zip(values, values[1:])),
               key=lambda t: (out["plain"] <= t).sum() + (out["styled"] > t).sum())
    acc = ((out["plain"] <= best).sum() + (out["styled"] > best).sum()) / (2 * count)
    day = np.array([s.background != "night" for s in scenes])  # the stack's prompts draw no night
    acc_day = ((out["plain"][day] <= best).sum() + (out["styled"][day] > best).sum()) / (2 * day.sum())
    return {"style": style, "plain_rt": round(float(out["plain"].mean()), 1), "styled_rt": round(float(out["styled"].mean()), 1),
            "threshold": round(float(best), 1), "accuracy": round(float(acc), 3), "accuracy_without_night": round(float(acc_day), 3)}


def interior(vae, style: str, count: int = 48, start: int = 8_100_000) -> dict:
    """Does the edge style change the scene inside it? Mean abs error (/255) at pixels 8 px or more
    from the edge against the plain scene as drawn: the plain round trip, the styled one, and the
    plain scene's latents with the styled ring of latent cells decoded (the decoder's share)."""
    import numpy as np
    import torch

    scenes = [world.random_scene(start + i, two_objects=0.2) for i in range(count)]
    plain = np.stack([np.asarray(world.render(s), np.float32) for s in scenes])
    styled = np.stack([STYLES[style](copy.deepcopy(s)) for s in scenes])
    with torch.no_grad():
        z = [vae.encode(torch.from_numpy(a).permute(0, 3, 1, 2) / 127.5 - 1).latent_dist.mean for a in (plain, styled)]
        hybrid = z[0].clone()
        ring = torch.from_numpy(style_probe.edge_distance(z[0].shape[-1]) < RING_CELLS[style])
        hybrid[:, :, ring] = z[1][:, :, ring]
        back = [((vae.decode(x).sample.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy() for x in (*z, hybrid)]
    inner = style_probe.edge_distance() >= 8
    err = [round(float(np.abs(b - plain)[:, inner].mean()), 1) for b in back]
    return {"style": style, "plain": err[0], "styled": err[1], "styled ring only": err[2]}


def teach_vae(base: str, out: str, steps: int = 200, count: int = 3000, anchor: float = 10.0, log=print) -> dict:
    """Copies the diffusers folder `base` to `out` with its VAE fine-tuned on `count` base-world
    scenes, each plain and framed (batch 16 + 16, AdamW lr 2e-4): loss L1 + MSE of both round trips
    plus `anchor` x the MSE (scaled latents) of the plain latents to the old encoder's and of the
    framed latents' inner cells (all but the frame's ring) to the plain scene's old latents."""
    import shutil
    import time

    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL

    from .train_base import BASE_SCENES

    torch.manual_seed(0)
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32)
    scenes = [world.random_scene(60_000_000 + i, **BASE_SCENES) for i in range(count)]

    def tensor(images):
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1

    plain = tensor([np.asarray(world.render(s), np.float32) for s in scenes])
    framed = tensor([STYLES["frame"](copy.deepcopy(s)) for s in scenes])
    sf = vae.config.scaling_factor
    vae.eval()
    with torch.no_grad():
        z_old = torch.cat([vae.encode(plain[i : i + 256]).latent_dist.mean for i in range(0, count, 256)]) * sf
    inner = torch.from_numpy(style_probe.edge_distance(z_old.shape[-1]) >= RING_CELLS["frame"])
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-4, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    vae.train()
    started = time.time()
    for step in range(1, steps + 1):
        idx = torch.randint(0, count, (16,), generator=g)
        x = torch.cat([plain[idx], framed[idx]])
        z = vae.encode(x).latent_dist.mean
        rec = vae.decode(z).sample
        zs, zo = z * sf, z_old[idx]
        kept = F.mse_loss(zs[:16], zo) + F.mse_loss(zs[16:][:, :, inner], zo[:, :, inner])
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + anchor * kept
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            log(json.dumps({"vae_step": step, "loss": round(loss.item(), 4), "anchor": round(kept.item(), 4), "seconds": round(time.time() - started)}))
    vae.eval()
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("vae"), dirs_exist_ok=True)
    vae.save_pretrained(os.path.join(out, "vae"))
    return {"steps": steps, "seconds": round(time.time() - started), "interior": interior(vae, "frame")}


def train(out: str, style: str, recipe: str, seed: int = 1, base: str | None = None) -> str:
    """The style LoRA for `recipe`; a file already in its folder is reused."""
    from .stack import train_style

    count, steps, lr = RECIPES[recipe]
    folder = os.path.join(out, f"txst-{style}-{recipe.replace(' ', '-')}")
    if os.path.exists(os.path.join(folder, "txst.safetensors")):
        return os.path.join(folder, "txst.safetensors")
    data = write_dataset(os.path.join(out, "data", f"{style}-{count}"), style, count)
    return train_style(folder, seed=seed, steps=steps, dataset=data, learning_rate=lr, base=base)


def scaled(path: str, factor: float) -> str:
    """A copy of the LoRA file with every lora_B scaled by `factor` (weight w then acts as w x factor
    did): how far the weight axis alone moves the style's showing at 0.3."""
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    tensors = {k: v * factor if "lora_B" in k else v for k, v in load_file(path).items()}
    out = path.replace(".safetensors", f"-x{factor:g}.safetensors")
    save_file(tensors, out, metadata=metadata)
    return out


def measure(txcl: str, styles: dict, seeds=(0,), steps: int = 20, grids: str | None = None, base: str | None = None) -> dict:
    """`styles`: {adapter name: (LoRA file, darkness threshold)}. {adapter name: {condition: {darkness
    (mean), over (samples past the threshold), cyan (the judge's cyan reads), n, values (per sample)}}}
    on the stack's prompts; with `grids`, a PNG of the samples per adapter (a row per condition)."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionXLPipeline

    from .judge import Judge
    from .rubric import BASE, JUDGE
    from .stack import _sample, prompts

    pipe = StableDiffusionXLPipeline.from_pretrained(base or BASE, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(txcl, adapter_name="txcl")
    for name, (path, _) in styles.items():
        pipe.load_lora_weights(path, adapter_name=name)
    judge = Judge(JUDGE)

    shown = []

    def read(weights: dict, threshold: float) -> dict:
        images = _sample(pipe, prompts(), weights, seeds, steps)
        shown.append(np.concatenate([np.asarray(im) for im in images], 1))
        dark = np.array([darkness(im) for im in images])
        cyan = sum(world.CHARACTER["colour"] in r["colours"] for r in judge.read(images))
        return {"darkness": round(float(dark.mean()), 1), "over": int((dark > threshold).sum()), "cyan": cyan, "n": len(images),
                "values": [round(float(v), 1) for v in dark]}

    report = {}
    for name, (_, t) in styles.items():
        rows = {"base": read({}, t), "txcl 0.5": read({"txcl": 0.5}, t)}
        for w in (0.3, 0.5, 1.0):
            rows[f"txst {w}"] = read({name: w}, t)
        for w in (0.3, 0.5):
            rows[f"txcl 0.5 + txst {w}"] = read({"txcl": 0.5, name: w}, t)
        report[name] = rows
        if grids:  # one row of samples per condition, in the rows' order
            from PIL import Image

            os.makedirs(grids, exist_ok=True)
            Image.fromarray(np.concatenate(shown, 0)).save(os.path.join(grids, f"{name}-seeds-{'-'.join(map(str, seeds))}.png"))
        shown.clear()
    return report


def run(out: str, styles=("frame", "vignette"), recipes=("20 img", "60 img"), seed: int = 1, sample_seeds=((0,), (1,)),
        scales=(), base: str | None = None, log=print) -> dict:
    """Trains (or reuses, from an earlier run in `out`) txcl and each style x recipe LoRA on `base`
    (default models/toy-sdxl), adds each LoRA scaled by `scales`, and measures them on each seed set."""
    import torch
    from diffusers import AutoencoderKL

    from .rubric import BASE, VARIANTS, train_variant

    vae = AutoencoderKL.from_pretrained(base or BASE, subfolder="vae", torch_dtype=torch.float32).eval()
    thresholds = {}
    for style in styles:
        sep = separable(vae, style)
        thresholds[style] = sep["threshold"]
        log(json.dumps({"separable": sep, "interior": interior(vae, style)}))
    txcl = os.path.join(out, "txcl", "good.safetensors")
    if not os.path.exists(txcl):
        txcl = train_variant({v.name: v for v in VARIANTS}["good"], os.path.join(out, "txcl"), seed=seed, base=base)
    # adapter names: no spaces or dots (peft module names), e.g. frame_20_img_x1p67
    loras = {f"{style}_{recipe.replace(' ', '_')}": (train(out, style, recipe, seed, base), thresholds[style])
             for style in styles for recipe in recipes}
    loras.update({f"{k}_x{f:g}".replace(".", "p"): (scaled(path, f), t) for k, (path, t) in list(loras.items()) for f in scales})
    report = {"thresholds": thresholds}
    for seeds in sample_seeds:
        rows = measure(txcl, loras, seeds=seeds, grids=os.path.join(out, "grids"), base=base)
        report[",".join(map(str, seeds))] = rows
        log(json.dumps({"seeds": list(seeds), "rows": rows}))
    return report
