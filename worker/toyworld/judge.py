"""The judge: a small CNN trained on the generator's labelled scenes, so the truth about any
64x64 image (what shape, colour, background, where, how big, which fill) can be read back.

Heads: background (softmax), shapes / colours / colour+shape pairs present (multi-label
sigmoid, so two-object scenes are read whole), object count, and for the first object its
fill, position (3x3 grid) and size. The 256-wide penultimate layer is the image embedding the
validation scores use in place of CLIP (`Judge.embed`, `score.py` with `embedder: toy-judge`).
Saved as `judge.safetensors` + `judge.json` (the label lists) in one folder.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Optional

from . import world

PAIRS = tuple(f"{c} {s}" for c in world.COLOUR_NAMES for s in world.SHAPES)
POSITION_TAGS = tuple(p[1] for p in world.POSITIONS)
EMBED_DIM = 256

HEADS = {
    # name: (labels, multi-label?)
    "background": (world.BACKGROUNDS, False),
    "shapes": (world.SHAPES, True),
    "colours": (world.COLOUR_NAMES, True),
    "pairs": (PAIRS, True),
    "count": (("1", "2"), False),
    "fill": (world.FILLS, False),
    "position": (POSITION_TAGS, False),
    "size": (world.SIZES, False),
}
# position and size of "the first object" are only well defined when there is one object
SINGLE_OBJECT_HEADS = ("position", "size")
# The style head (style_head.py): is the first object drawn in the txst style? A small branch on
# the first block's features (32 x 32: a small object's shaded half spans a few cells there, one
# or two on the second block's 16 x 16, where the branch read 96% after the VAE against 97.7-98%
# here; bench/RESULTS.md), trained after the rest with the trunk frozen, so the heads above read
# exactly as before.
STYLE_LABELS = ("plain", world.SHADED)
STYLE_WIDTH = 48
STYLE_IN = 32  # the first block's channels
# The colour-under-style head (colour_head.py): the objects' colours whatever their fill, the txst
# style included, as drawn and after each toy VAE's round trip. The `colours` head never saw the
# style: on shaded cyan crosses round-tripped through the toy SDXL VAE it reads cyan in 36 of 48
# (bench/RESULTS.md), so a stack whose style shades the character read as losing the character. A
# small MLP on the embedding, trained after the rest with the trunk frozen (every other head reads
# as before); `read` gives it as `colours_any`.
COLOUR_ANY_WIDTH = 128
# branches trained after the trunk; a judge file without one (or with an older shape) loads without it
OPTIONAL_BRANCHES = ("style", "colour_any")


def build_model():
    import torch.nn as nn

    def block(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    class JudgeNet(nn.Module):
        def __init__(self):
            super().__init__()
            # coordinates as two extra input channels: position is then easy to read
            self.features = nn.Sequential(block(5, 32), block(32, 64), block(64, 96), block(96, 128), nn.Flatten())
            self.embed = nn.Sequential(nn.Linear(128 * 4 * 4, EMBED_DIM), nn.ReLU(inplace=True))
            self.heads = nn.ModuleDict({name: nn.Linear(EMBED_DIM, len(labels)) for name, (labels, _) in HEADS.items()})
            self.style = nn.Sequential(
                nn.Conv2d(STYLE_IN, STYLE_WIDTH, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(STYLE_WIDTH, STYLE_WIDTH, 3, padding=1), nn.ReLU(inplace=True),
                nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(STYLE_WIDTH, len(STYLE_LABELS)),
            )
            self.colour_any = nn.Sequential(
                nn.Linear(EMBED_DIM, COLOUR_ANY_WIDTH), nn.ReLU(inplace=True), nn.Linear(COLOUR_ANY_WIDTH, len(world.COLOUR_NAMES)),
            )

        def inputs(self, x):
            import torch

            b, _, h, w = x.shape
            ys = torch.linspace(-1, 1, h, device=x.device).view(1, 1, h, 1).expand(b, 1, h, w)
            xs = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, w).expand(b, 1, h, w)
            return torch.cat([x * 2 - 1, ys, xs], dim=1)

        def style_features(self, x):
            """The first block's output (32 x 32 x 32), the style branch's input."""
            return self.features[0](self.inputs(x))

        def embedding(self, x):
            return self.embed(self.features(self.inputs(x)))

        def forward(self, x):
            f = self.features[0](self.inputs(x))
            e = self.embed(self.features[1:](f))
            return e, {**{name: head(e) for name, head in self.heads.items()}, "style": self.style(f), "colours_any": self.colour_any(e)}

    return JudgeNet()


def targets(labels: dict) -> dict:
    """Label dict (world.labels) -> per-head target indices / multi-hot lists."""
    out = {}
    for name, (names, multi) in HEADS.items():
        value = labels[name]
        if multi:
            out[name] = [1.0 if n in value else 0.0 for n in names]
        else:
            out[name] = names.index(str(value))
    return out


def _make_batch(seeds: Iterable[int], scene_kwargs: dict):
    import numpy as np

    xs, ys = [], []
    for seed in seeds:
        scene = world.random_scene(seed, **scene_kwargs)
        xs.append(world.render_array(scene))
        ys.append(targets(world.labels(scene)))
    return np.stack(xs), ys


# Training scenes: every shape, colour, fill and pair, rotations up to 45 degrees (the product
# concept's range), half of them with two objects.
JUDGE_SCENES = {"fills": world.FILLS, "two_objects": 0.4, "rotation": 45.0}


def _render_chunk(args):
    start, stop = args
    return _make_batch(range(start, stop), JUDGE_SCENES)


def make_dataset(start: int, count: int, workers: int = 1):
    """Images (N,3,64,64 float32 in [0,1]) and per-head targets for seeds start..start+count."""
    import numpy as np
    import torch

    chunk = 512
    ranges = [(s, min(s + chunk, start + count)) for s in range(start, start + count, chunk)]
    if workers > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            parts = pool.map(_render_chunk, ranges)
    else:
        parts = [_render_chunk(r) for r in ranges]
    x = torch.from_numpy(np.concatenate([p[0] for p in parts])).permute(0, 3, 1, 2).contiguous()
    ys = [y for p in parts for y in p[1]]
    t = {}
    for name, (_, multi) in HEADS.items():
        t[name] = torch.tensor([y[name] for y in ys], dtype=torch.float32 if multi else torch.long)
    return x, t


def head_losses(logits: dict, t: dict):
    import torch.nn.functional as F

    total = 0.0
    single = t["count"] == 0
    for name, (_, multi) in HEADS.items():
        if multi:
            total = total + F.binary_cross_entropy_with_logits(logits[name], t[name])
        elif name in SINGLE_OBJECT_HEADS:
            if single.any():
                total = total + F.cross_entropy(logits[name][single], t[name][single])
        else:
            total = total + F.cross_entropy(logits[name], t[name])
    return total


def train_judge(*, steps: int = 3000, batch: int = 256, train_images: int = 60000, seed: int = 0, device: str = "cpu",
                workers: int = 1, log=print) -> "object":
    import torch

    torch.manual_seed(seed)
    x, t = make_dataset(seed * 10_000_000, train_images, workers)
    x = x.to(device)
    t = {k: v.to(device) for k, v in t.items()}
    model = build_model().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    g = torch.Generator(device="cpu").manual_seed(seed)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g).to(device)
        xb = x[idx]
        # light photometric noise so generated (slightly imperfect) images read the same
        xb = (xb + 0.03 * torch.randn_like(xb)).clamp(0, 1)
        _, logits = model(xb)
        loss = head_losses(logits, {k: v[idx] for k, v in t.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps:
            log(f"judge step {step}/{steps} loss {float(loss.detach()):.4f}")
    model.eval()
    return model


def fit_branch(branch, feats, labels, loss_fn, *, epochs: int, batch: int, seed: int, name: str, started: float,
               log=print, log_every: int = 1) -> None:
    """Trains a branch trained after the trunk (style_head.py, colour_head.py) in place on precomputed trunk
    features: its parameters reset, AdamW with a one-cycle schedule (max lr 3e-3), `epochs` shuffled passes."""
    import time

    import torch

    torch.manual_seed(seed)
    for m in branch.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    opt = torch.optim.AdamW(branch.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((feats.shape[0] + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    branch.train()
    for epoch in range(epochs):
        for idx in torch.randperm(feats.shape[0], generator=g).split(batch):
            loss = loss_fn(branch(feats[idx].float()), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % log_every == 0 or epoch + 1 == epochs:
            log(f"{name} epoch {epoch + 1}/{epochs} loss {float(loss.detach()):.4f} ({time.time() - started:.0f}s)")
    branch.eval()


def save_judge(model, folder: str, info: Optional[dict] = None) -> None:
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    # fp16 halves the file; BatchNorm's integer counter stays as it is
    state = {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, "judge.safetensors"))
    meta = {**_layout(), **(info or {})}
    with open(os.path.join(folder, "judge.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)


def _layout() -> dict:
    """What judge.json says of the model's own layout (label lists, sizes): written by every save."""
    return {"heads": {k: list(v[0]) for k, v in HEADS.items()}, "style_head": list(STYLE_LABELS), "colour_any_head": list(world.COLOUR_NAMES),
            "embed_dim": EMBED_DIM, "size": world.SIZE}


def save_branch(model, folder: str, key: str, report: dict) -> None:
    """Rewrites the judge in `folder` after a branch was trained (style_head.py, colour_head.py): the weights, and
    judge.json with what it held before (the trunk's and other branches' reports) plus `report` under `key`."""
    with open(os.path.join(folder, "judge.json"), encoding="utf-8") as f:
        info = json.load(f)
    layout = _layout()
    save_judge(model, folder, {**{k: v for k, v in info.items() if k not in layout}, key: report})


class Judge:
    """A trained judge: `read(images)` gives labels, `embed(images)` L2-normalised embeddings."""

    def __init__(self, folder: str, device: str = "cpu"):
        import torch
        from safetensors.torch import load_file

        path = os.path.join(folder, "judge.safetensors")
        if not os.path.exists(path):
            raise FileNotFoundError(f"no judge.safetensors in {folder}")
        self.model = build_model()
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}
        # a judge saved before a branch existed, or with an older branch's shapes, loads without it
        # (style_head.py and colour_head.py train them)
        own = self.model.state_dict()

        def branch(key):
            return next((b for b in OPTIONAL_BRANCHES if key.startswith(b + ".")), None)

        state = {k: v for k, v in state.items() if branch(k) is None or (k in own and own[k].shape == v.shape)}
        missing = self.model.load_state_dict(state, strict=False).missing_keys
        if any(branch(k) is None for k in missing):
            raise ValueError(f"{path} lacks {', '.join(missing[:5])}")
        self.has_style = not any(branch(k) == "style" for k in missing)
        self.has_colour_any = not any(branch(k) == "colour_any" for k in missing)
        self.model.to(device).eval()
        self.device = device
        self.torch = torch

    def _tensor(self, images):
        import numpy as np
        from PIL import Image

        arrays = []
        for im in images:
            if isinstance(im, str):
                with Image.open(im) as f:
                    im = f.convert("RGB")
            if hasattr(im, "convert"):
                im = im.convert("RGB")
                if im.size != (world.SIZE, world.SIZE):
                    im = im.resize((world.SIZE, world.SIZE), Image.BICUBIC)
                im = np.asarray(im, dtype=np.float32) / 255.0
            arrays.append(im)
        return self.torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.device)

    def logits(self, images):
        with self.torch.no_grad():
            return self.model(self._tensor(images))

    def embed(self, images):
        e, _ = self.logits(images)
        return self.torch.nn.functional.normalize(e.float(), dim=-1).cpu()

    def read(self, images, threshold: float = 0.5) -> list[dict]:
        _, logits = self.logits(images)
        out = [dict() for _ in range(logits["background"].shape[0])]
        for name, (names, multi) in HEADS.items():
            if multi:
                probs = logits[name].sigmoid().cpu()
                for i, row in enumerate(probs):
                    out[i][name] = [names[j] for j, p in enumerate(row.tolist()) if p >= threshold]
            else:
                idx = logits[name].argmax(dim=1).cpu().tolist()
                for i, j in enumerate(idx):
                    out[i][name] = names[j]
        if self.has_style:  # an untrained branch (no or an older style head in the file) reads at random
            for i, j in enumerate(logits["style"].argmax(dim=1).cpu().tolist()):
                out[i]["style"] = STYLE_LABELS[j]
        if self.has_colour_any:
            for i, row in enumerate(logits["colours_any"].sigmoid().cpu().tolist()):
                out[i]["colours_any"] = [world.COLOUR_NAMES[j] for j, p in enumerate(row) if p >= threshold]
        for o in out:
            o["count"] = int(o["count"])
        return out


def accuracy(model_or_judge, start: int, count: int, device: str = "cpu", workers: int = 1) -> dict:
    """Per-head accuracy on held-out seeds (exact set match for the multi-label heads)."""
    import torch

    model = model_or_judge.model if isinstance(model_or_judge, Judge) else model_or_judge
    x, t = make_dataset(start, count, workers)
    correct = {name: 0 for name in HEADS}
    totals = {name: 0 for name in HEADS}
    with torch.no_grad():
        for i in range(0, x.shape[0], 512):
            xb = x[i : i + 512].to(device)
            _, logits = model(xb)
            tb = {k: v[i : i + 512].to(device) for k, v in t.items()}
            single = tb["count"] == 0
            for name, (_, multi) in HEADS.items():
                if multi:
                    ok = ((logits[name] > 0).float() == tb[name]).all(dim=1)
                else:
                    ok = logits[name].argmax(dim=1) == tb[name]
                if name in SINGLE_OBJECT_HEADS:
                    ok = ok[single]
                correct[name] += int(ok.sum())
                totals[name] += int(ok.numel())
    return {name: correct[name] / max(1, totals[name]) for name in HEADS}
