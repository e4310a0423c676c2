"""The judge's style head: reads whether the first object is drawn in the txst style
(world.SHADED), on generator renders and on the same renders after the toy SDXL VAE's encode and
decode (what a LoRA's samples look like: it can only draw what the VAE decodes).

The judge's trunk stays frozen, so every other head reads exactly as before; only the small
branch `JudgeNet.style` (on the first block's 32 x 32 x 32 features) is trained, on the
generator's labels: half the scenes in the style, the other half the judge's own training mix
(solid, striped, dotted fills), each scene both as drawn and round-tripped through the VAE (what it
will read). `PYTHONPATH=worker python -m toyworld train-style-head` trains it and rewrites
models/toy-judge with its held-out accuracy in judge.json.
"""

from __future__ import annotations

import json
import time

from . import judge as judge_mod
from . import world

# Seeds: the judge trained on 0..60,000 and is checked on 50M and 70M; these are apart from both.
TRAIN_START = 80_000_000
HELD_OUT_START = 81_000_000
# 10,000 scenes (20,000 images), 15 epochs: after the VAE the head read 93.0% with 3,000 scenes on the
# second block's features, 96.2% with 6,000, 97.6% with 6,000 on the first block's, 98.6% with
# 10,000 there (bench/RESULTS.md).
SCENES = 10_000
EPOCHS = 15


def style_scene(seed: int) -> world.Scene:
    """The judge's scene mix; every other seed with its objects in the style."""
    scene = world.random_scene(seed, **judge_mod.JUDGE_SCENES)
    if seed % 2:
        for o in scene.objects:
            o.fill = world.SHADED
    return scene


def load_vae(base: str):
    """The VAE of a toy base folder (SDXL or FLUX.1; the latent shift and scale cancel in a round trip), float32, eval."""
    import torch
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32).eval()


def roundtrip(vae, x):
    """Images (N,3,H,W in [0,1]) through the VAE's encode (mean) and decode, quantised to 8 bits."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], 128):
            y = vae.decode(vae.encode(x[i : i + 128] * 2 - 1).latent_dist.mean).sample
            out.append(((y.clamp(-1, 1) + 1) * 127.5).round() / 255)
    return torch.cat(out)


def make_data(vae, start: int, count: int):
    """(clean images, round-tripped images, labels) for seeds start..start+count."""
    import numpy as np
    import torch

    scenes = [style_scene(s) for s in range(start, start + count)]
    x = torch.from_numpy(np.stack([world.render_array(s) for s in scenes])).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([judge_mod.STYLE_LABELS.index(world.labels(s)["style"]) for s in scenes])
    return x, roundtrip(vae, x), y


def _features(model, x):
    import torch

    # kept in half precision (20,000 images x 32 x 32 x 32 is 1.3 GB so); read back as float32
    with torch.no_grad():
        return torch.cat([model.style_features(x[i : i + 256]).half() for i in range(0, x.shape[0], 256)])


def train(model, vae, *, count: int = SCENES, epochs: int = EPOCHS, seed: int = 0, log=print) -> dict:
    """Trains model.style in place on `count` scenes, each clean and round-tripped."""
    import torch
    import torch.nn.functional as F

    started = time.time()
    x, r, y = make_data(vae, TRAIN_START, count)
    feats = torch.cat([_features(model, x), _features(model, r)])
    labels = torch.cat([y, y])
    log(f"style head: {count} scenes rendered, round-tripped and encoded in {time.time() - started:.0f}s")
    judge_mod.fit_branch(model.style, feats, labels, F.cross_entropy, epochs=epochs, batch=128, seed=seed, name="style head",
                         started=started, log=log)
    return {"scenes": count, "epochs": epochs, "seconds": time.time() - started}


def accuracy(model, vae, start: int = HELD_OUT_START, count: int = 1000) -> dict:
    """Held-out accuracy of the style head on clean renders and after the VAE round trip."""
    import torch

    x, r, y = make_data(vae, start, count)
    out = {}
    with torch.no_grad():
        for name, images in (("clean", x), ("roundtrip", r)):
            pred = torch.cat([model.style(model.style_features(images[i : i + 256])) for i in range(0, images.shape[0], 256)]).argmax(dim=1)
            out[name] = float((pred == y).float().mean())
    return out


def run(judge_folder: str, base: str, *, count: int = SCENES, epochs: int = EPOCHS, held_out: int = 1000, log=print) -> dict:
    judge = judge_mod.Judge(judge_folder)
    vae = load_vae(base)
    report = {"training": train(judge.model, vae, count=count, epochs=epochs, log=log)}
    report["held_out_images"] = held_out
    report["accuracy"] = accuracy(judge.model, vae, count=held_out)
    log(f"style head held-out accuracy: {json.dumps(report['accuracy'])}")
    judge_mod.save_branch(judge.model, judge_folder, "style", report)
    return report
