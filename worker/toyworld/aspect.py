"""The portrait-and-landscape `txcl` set (issue 21's bucket proof): what a square centre crop loses
and aspect-ratio buckets keep.

  character-aspect   the txcl character (cyan cross, small or medium, sky / grass / indoor) on
                     64x128 portraits and 128x64 landscapes, alternating; the 3x3 grid spreads to
                     the canvas (world.render), and the cross sits in the top or bottom row of a
                     portrait, the left or right column of a landscape: the outer 32 px band that
                     a square centre crop cuts away (at 64 px the crop keeps rows / columns
                     32..96, the cross never reaches past 29). Captions as the character set's
                     ("txcl, medium, in the top left on a sky background"), labels.jsonl with
                     each image's size.

How the judge reads a non-square image (`read_tiles`): the judge is a fixed 64x64 CNN, so an image
is read as 64x64 windows at its own pixel scale (stride 32, so an object within a 32 px band is
whole in one window), and it shows the character when one window reads cyan, and the whole
character when one window reads cyan and a cross. Padding a 64x128 image to a square and
shrinking it would halve every object below the judge's smallest size; stretching it to 64x64
would draw a cross the judge never saw. Windows read every image (a square crop, a bucket, a
sample) at the scale the judge was trained on.

The bucket sets come from core (`core_buckets`: plan/buckets.ts resolveBuckets through tsx), the
same sets it writes into a train request for `dataset.aspect: buckets` and `square`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess

from . import world

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SEED = 6_000_000
PORTRAIT, LANDSCAPE = (64, 128), (128, 64)  # (width, height)
BACKGROUNDS = ("sky", "grass", "indoor")
# Grid cells in the band a square centre crop cuts away: a portrait's top and bottom rows, a
# landscape's left and right columns.
BAND = {PORTRAIT: (0, 1, 2, 6, 7, 8), LANDSCAPE: (0, 3, 6, 2, 5, 8)}
# The bucketed run: core's Kohya set at 96 px (area 9,216) with sides 64..128 in steps of 32 is
# exactly 64x128, 96x96 and 128x64, so both shapes train at their own size, unresized. The square
# run: one 64x64 bucket (the toy base's native size), each image centre-cropped to it.
BUCKETED = {"resolution": 96, "buckets": {"min_side": 64, "max_side": 128, "step": 32}}
SQUARE = {"resolution": 64}
WINDOW, STRIDE = world.SIZE, 32


def aspect_scene(i: int) -> tuple[world.Scene, tuple[int, int]]:
    """Scene i and its canvas (width, height): even i portrait, odd i landscape."""
    seed = SEED + i
    canvas = PORTRAIT if i % 2 == 0 else LANDSCAPE
    ch = world.CHARACTER
    scene = world.random_scene(seed, two_objects=0.0, backgrounds=BACKGROUNDS, fixed={"shape": ch["shape"], "colour": ch["colour"]})
    rng = random.Random(seed * 3 + 2)
    o = scene.objects[0]
    o.position, o.size = rng.choice(BAND[canvas]), rng.choice(("small", "medium"))
    return scene, canvas


def write_aspect(folder: str, count: int = 20) -> dict:
    """The character-aspect set: NNN.png + NNN.txt and labels.jsonl (truth, size, canvas)."""
    os.makedirs(folder, exist_ok=True)
    rows = []
    for i in range(count):
        scene, (width, height) = aspect_scene(i)
        name = f"{i:03d}"
        world.render(scene, width, height).save(os.path.join(folder, name + ".png"))
        caption = world.natural_caption(scene, world.CHARACTER["trigger"], replace_object=True)
        with open(os.path.join(folder, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(caption + "\n")
        rows.append({"image": name + ".png", "width": width, "height": height, "caption": caption,
                     "labels": world.labels(scene), "scene": scene.to_dict()})
    with open(os.path.join(folder, "labels.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return {"concept": "character-aspect", "path": os.path.abspath(folder), "images": count}


def core_buckets(resolution: int, buckets: dict | None = None) -> list[dict]:
    """The bucket set core writes into the train request: resolveBuckets for `aspect: buckets`
    with `buckets` (the contract's dataset.buckets), or `aspect: square` when None."""
    dataset = {"aspect": "buckets", "buckets": buckets} if buckets is not None else {"aspect": "square"}
    script = ("import { resolveBuckets } from './packages/core/src/plan/buckets.ts';"
              f"console.log(JSON.stringify(resolveBuckets({{ dataset: {json.dumps(dataset)} }}, {int(resolution)}).buckets));")
    tsx = os.path.join(REPO, "node_modules", ".bin", "tsx")
    proc = subprocess.run([tsx, "-e", script], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def windows(image) -> list:
    """64x64 crops of a PIL image at stride 32 (both axes), covering it; a 64x64 image is one."""
    w, h = image.size
    xs = sorted({*range(0, max(1, w - WINDOW + 1), STRIDE), max(0, w - WINDOW)})
    ys = sorted({*range(0, max(1, h - WINDOW + 1), STRIDE), max(0, h - WINDOW)})
    return [image.crop((x, y, x + WINDOW, y + WINDOW)) for y in ys for x in xs]


def read_tiles(judge, images) -> list[list[dict]]:
    """The judge's reads of each image's windows."""
    tiles = [windows(im) for im in images]
    reads = judge.read([t for ts in tiles for t in ts]) if tiles else []
    out, k = [], 0
    for ts in tiles:
        out.append(reads[k:k + len(ts)])
        k += len(ts)
    return out


def shows_character(reads: list[dict]) -> bool:
    """Some window reads the character's colour."""
    return any(world.CHARACTER["colour"] in r["colours"] for r in reads)


def shows_whole(reads: list[dict]) -> bool:
    """Some window reads the character's colour and its shape: the cross whole."""
    ch = world.CHARACTER
    return any(ch["colour"] in r["colours"] and ch["shape"] in r["shapes"] for r in reads)


def pixels_to_image(pixels):
    """A CHW tensor in [-1, 1] (what the trainer feeds the VAE) as a PIL image."""
    import numpy as np
    from PIL import Image

    array = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def decode_latents(vae, latents):
    """Cached latents (scaled, as the trainer caches them) decoded by the VAE, as PIL images."""
    import torch

    with torch.no_grad():
        x = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    return [pixels_to_image(p) for p in x]
