"""The judge's colour-under-style head: which colours the objects are, whatever their fill, the txst
style (world.SHADED) included, on generator renders and after each toy VAE's round trip.

Why: the `colours` head was trained on solid, striped and dotted fills only. A cel-shaded object's
lower half is its shade colour, and after the toy SDXL VAE's round trip the head reads cyan on 36 of
48 shaded cyan crosses (blue or white on the rest), so a stack whose style shades the character was
read as losing the character (bench/RESULTS.md, "A style baked for its weight"). The style is meant
to restyle the character, not to recolour it: the stack measure reads the character with this head.

The trunk stays frozen, so every other head and the embedding read exactly as before; only the
small MLP `JudgeNet.colour_any` on the 256-wide embedding is trained, on the generator's labels:
style_head.style_scene's mix (half the scenes shaded), each scene as drawn and round-tripped through
every VAE given. `PYTHONPATH=worker python -m toyworld train-colour-head` trains it and rewrites
models/toy-judge with its held-out accuracy in judge.json.
"""

from __future__ import annotations

import json
import os
import time

from . import judge as judge_mod
from . import world
from .style_head import load_vae, roundtrip, style_scene

# Seeds apart from the judge's (0..60,000; checks at 50M and 70M) and the style head's (80M, 81M).
TRAIN_START = 82_000_000
HELD_OUT_START = 83_000_000
# the character's object, shaded: the read the stack measure needs (seeds as bench/RESULTS.md's ceiling)
CHARACTER_PROBE_START = 9_300_000
SCENES = 8_000
EPOCHS = 30


def _render(start: int, count: int):
    """Images (N,3,64,64 in [0,1]), multi-hot colour targets and the 'shaded' flag for seeds start.."""
    import numpy as np
    import torch

    scenes = [style_scene(s) for s in range(start, start + count)]
    x = torch.from_numpy(np.stack([world.render_array(s) for s in scenes])).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([[1.0 if c in world.labels(s)["colours"] else 0.0 for c in world.COLOUR_NAMES] for s in scenes])
    shaded = torch.tensor([world.labels(s)["style"] == world.SHADED for s in scenes])
    return x, y, shaded


def _embed(model, x):
    import torch

    with torch.no_grad():
        return torch.cat([model.embedding(x[i : i + 256]) for i in range(0, x.shape[0], 256)])


def _views(model, vaes: dict, x) -> dict:
    """{view: embeddings}: 'drawn' and one round trip per VAE."""
    return {"drawn": _embed(model, x), **{name: _embed(model, roundtrip(vae, x)) for name, vae in vaes.items()}}


def train(model, vaes: dict, *, count: int = SCENES, epochs: int = EPOCHS, seed: int = 0, log=print) -> dict:
    """Trains model.colour_any in place on `count` scenes, each drawn and round-tripped through every VAE."""
    import torch
    import torch.nn.functional as F

    started = time.time()
    x, y, _ = _render(TRAIN_START, count)
    views = _views(model, vaes, x)
    feats = torch.cat(list(views.values()))
    labels = torch.cat([y] * len(views))
    log(f"colour head: {count} scenes rendered, round-tripped ({', '.join(vaes)}) and embedded in {time.time() - started:.0f}s")
    judge_mod.fit_branch(model.colour_any, feats, labels, F.binary_cross_entropy_with_logits, epochs=epochs, batch=256, seed=seed,
                         name="colour head", started=started, log=log, log_every=5)
    return {"scenes": count, "epochs": epochs, "views": list(views), "seconds": round(time.time() - started)}


def character_probe(model, vaes: dict, count: int = 48) -> dict:
    """Of `count` shaded cyan crosses (the character's object in the style), how many each head reads
    cyan, per view: the `colours` head (its ceiling in the stack measure) against `colour_any`."""
    import numpy as np
    import torch

    ch = world.CHARACTER
    scenes = [world.random_scene(CHARACTER_PROBE_START + i, two_objects=0.0, fills=(world.SHADED,),
                                 fixed={"shape": ch["shape"], "colour": ch["colour"]}) for i in range(count)]
    x = torch.from_numpy(np.stack([world.render_array(s) for s in scenes])).permute(0, 3, 1, 2).contiguous()
    cyan = world.COLOUR_NAMES.index(ch["colour"])
    out = {}
    with torch.no_grad():
        for view, e in _views(model, vaes, x).items():
            out[view] = {"colours": int((model.heads["colours"](e)[:, cyan] > 0).sum()),
                         "colours_any": int((model.colour_any(e)[:, cyan] > 0).sum()), "of": count}
    return out


def accuracy(model, vaes: dict, start: int = HELD_OUT_START, count: int = 1000) -> dict:
    """Held-out exact-set accuracy per view, on the plain and the shaded scenes apart, of both heads."""
    import torch

    x, y, shaded = _render(start, count)
    out = {}
    with torch.no_grad():
        for view, e in _views(model, vaes, x).items():
            for head, logits in (("colours", model.heads["colours"](e)), ("colours_any", model.colour_any(e))):
                ok = ((logits > 0).float() == y).all(dim=1)
                out.setdefault(head, {})[view] = {"plain": round(float(ok[~shaded].float().mean()), 4),
                                                  "shaded": round(float(ok[shaded].float().mean()), 4)}
    return out


def load_vaes(bases: list[str]) -> dict:
    """{base folder name: its VAE} (style_head.load_vae)."""
    return {os.path.basename(os.path.normpath(b)): load_vae(b) for b in bases}


def run(judge_folder: str, bases: list[str], *, count: int = SCENES, epochs: int = EPOCHS, held_out: int = 1000, log=print) -> dict:
    judge = judge_mod.Judge(judge_folder)
    vaes = load_vaes(bases)
    report = {"training": train(judge.model, vaes, count=count, epochs=epochs, log=log), "held_out_images": held_out}
    report["accuracy"] = accuracy(judge.model, vaes, count=held_out)
    report["character_probe"] = character_probe(judge.model, vaes)
    log(f"colour head held-out accuracy: {json.dumps(report['accuracy'])}")
    log(f"colour head on shaded cyan crosses: {json.dumps(report['character_probe'])}")
    judge_mod.save_branch(judge.model, judge_folder, "colour_any", report)
    return report
