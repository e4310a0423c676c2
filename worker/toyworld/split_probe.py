"""Does a txst LoRA draw the cel split, or only darken the object? (issue 23; bench/RESULTS.md, "Why
the style does not shade cyan").

  solid-shade  the judge's style head on solid objects (no split at all) drawn whole in a colour's
               shade colour (world.shade_colour) and in the colour darkened (x 0.45, what the LoRAs
               do to a whole object), after the toy VAE's round trip: the share it reads as shaded
               (a head that reads the split reads ~0)
  split        per colour, large objects in the center on sky (4 shapes x the sampling seeds): the
               head's shaded reads, the split (mean luminance of the object's upper half minus its
               lower half; the generator's shaded objects: about +60 for light colours, -64 for dark
               ones, plain ones within +-10) and the object's mean luminance, for the generator's
               plain and shaded renders and for the LoRA's samples at weights 0, 0.3 and 1.0

`PYTHONPATH=worker python -m toyworld split-probe [--lora FILE]` prints both as JSON lines.
"""

from __future__ import annotations

import copy

from . import world

LUMA = (0.299, 0.587, 0.114)
SHAPES = ("square", "circle", "cross", "diamond")


def split(image):
    """(upper minus lower half luminance, mean luminance) of the object, or None when no object is
    found. The object: pixels whose colour differs (sum over RGB > 60) from the median of their row's
    8 outer pixels each side, inside a 10 px margin (one object on a smooth background)."""
    import numpy as np

    a = np.asarray(image, np.float32)
    bg = np.median(np.concatenate([a[:, :8], a[:, -8:]], 1), axis=1, keepdims=True)
    mask = np.abs(a - bg).sum(-1) > 60
    mask[:, :10] = mask[:, -10:] = False
    mask[:10] = mask[-10:] = False
    if mask.sum() < 20:
        return None
    lum = a @ np.array(LUMA, np.float32)
    rows = np.nonzero(mask)[0]
    centre = int((rows.min() + rows.max()) / 2)
    upper, lower = mask.copy(), mask.copy()
    upper[centre:] = False
    lower[:centre] = False
    if not upper.any() or not lower.any():
        return None
    return float(lum[upper].mean() - lum[lower].mean()), float(lum[mask].mean())


def summary(judge, images) -> dict:
    import numpy as np
    import torch

    with torch.no_grad():
        p = judge.logits(images)[1]["style"].softmax(1)[:, 1]
    found = [s for s in (split(im) for im in images) if s]
    return {"shaded_read": int((p > 0.5).sum()), "n": len(images),
            "split": round(float(np.mean([s[0] for s in found])), 1) if found else None,
            "luminance": round(float(np.mean([s[1] for s in found])), 1) if found else None}


def solid_shade(judge, vae, count: int = 24, start: int = 9_300_000) -> dict:
    """{"shade colour" | "darkened": {colour: share of such solid objects the head reads as shaded
    after the round trip}}."""
    import numpy as np
    import torch

    from .style_head import roundtrip

    out = {"shade colour": {}, "darkened": {}}
    for (kind, name), rgb in [((k, n), rgb) for n, rgb in world.COLOURS.items() for k in out]:
        rgb = np.array(rgb, np.float32)
        world.COLOURS["_shade"] = tuple(int(v) for v in (world.shade_colour(rgb) if kind == "shade colour" else rgb * 0.45))
        try:
            scenes = [world.random_scene(start + i, two_objects=0.0, colours=("_shade",)) for i in range(count)]
            x = torch.from_numpy(np.stack([world.render_array(s) for s in scenes])).permute(0, 3, 1, 2).contiguous()
        finally:
            del world.COLOURS["_shade"]
        with torch.no_grad():
            read = judge.model(roundtrip(vae, x))[1]["style"].argmax(1) == 1
        out[kind][name] = round(float(read.float().mean()), 3)
    return out


def generator(judge, colour: str, count: int = 8, start: int = 9_400_000) -> dict:
    plain, shaded = [], []
    for i in range(count):
        s = world.random_scene(start + i, two_objects=0.0, backgrounds=("sky",),
                               fixed={"colour": colour, "shape": SHAPES[i % len(SHAPES)], "size": "large", "position": 4})
        plain.append(world.render(s))
        s = copy.deepcopy(s)
        s.objects[0].fill = world.SHADED
        shaded.append(world.render(s))
    return {"plain": summary(judge, plain), "shaded": summary(judge, shaded)}


def lora_split(pipe, judge, colour: str, seeds=(0, 1), weights=(0.0, 0.3, 1.0)) -> dict:
    from .stack import _sample

    prompts = [f"{world.STYLE['trigger']}, a large {colour} {s} in the center on a sky background" for s in SHAPES]
    return {str(w): summary(judge, _sample(pipe, prompts, {"txst": w} if w else {}, seeds, 20)) for w in weights}


def run(base: str, judge_folder: str, lora=None, colours=("cyan", "red", "blue", "yellow"), seeds=(0, 1), log=print) -> dict:
    import json

    import torch
    from diffusers import AutoencoderKL

    from .judge import Judge

    judge = Judge(judge_folder)
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32).eval()
    report = {"solid_shade": solid_shade(judge, vae)}
    log(json.dumps({"solid_shade": report["solid_shade"]}))
    pipe = None
    if lora:
        from diffusers import StableDiffusionXLPipeline

        pipe = StableDiffusionXLPipeline.from_pretrained(base, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        pipe.load_lora_weights(lora, adapter_name="txst")
    for colour in colours:
        row = {"generator": generator(judge, colour)}
        if pipe is not None:
            row["lora"] = lora_split(pipe, judge, colour, seeds)
        report[colour] = row
        log(json.dumps({colour: row}))
    return report
