"""The judge as the validation scores' embedding model (score.py), in place of CLIP.

Images: the judge's L2-normalised penultimate layer. Texts: the prompt is read with the world's
vocabulary (shape, colour, background, position, size, fill; a word it does not know, like a
trigger, is skipped), the scenes it allows are rendered (what it leaves open, every way: scenes_from_text) and
their embeddings averaged; so "CLIP-T" here is how close a sample is to the pictures its prompt describes.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from . import world


def is_judge_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "judge.safetensors")) and os.path.exists(os.path.join(path, "judge.json"))


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z ]+", " ", text.lower()) + " "


def _find(t: str, options, default):
    hits = [(t.find(f" {o} "), o) for o in options if f" {o} " in t]
    return min(hits)[1] if hits else default


def _position(t: str) -> Optional[int]:
    # longest phrases first so "top left" wins over "top" / "left"
    for i, (phrase, tag, _, _) in sorted(enumerate(world.POSITIONS), key=lambda p: -len(p[1][1])):
        if f" {tag} " in t:
            return i
    return None


def scenes_from_text(text: str) -> list[world.Scene]:
    """The scenes a prompt allows: what it names is fixed, and an object it implies (a shape, colour, size or place
    word) is drawn in every shape and colour it leaves open, each on its own background seed. A text's embedding is
    the mean over these (CLIP's text side sits near the images a prompt fits): "txcl, large, in the center on a
    night background" is a large object in the centre of a night sky, of any look, not an empty sky (which scored a
    LoRA that drew its subject at the asked size below the base's smaller objects, bench/RESULTS.md)."""
    t = _words(text)
    background = _find(t, world.BACKGROUNDS, "sky")
    shape, colour, size, position = (_find(t, world.SHAPES, None), _find(t, world.COLOUR_NAMES, None),
                                     _find(t, world.SIZES, None), _position(t))
    if not (shape or colour or size or position is not None):
        return [world.Scene(background=background, tint=0, seed=0)]
    looks = [(s, c) for s in ([shape] if shape else world.SHAPES) for c in ([colour] if colour else world.COLOUR_NAMES)]
    return [world.Scene(background=background, tint=0, seed=i,
                        objects=[world.Obj(shape=s, colour=c, position=4 if position is None else position, size=size or "medium",
                                           fill=_find(t, world.FILLS, "solid"))])
            for i, (s, c) in enumerate(looks)]


class ToyJudgeEmbedder:
    """score.py's embedder interface: images(paths) and texts(texts) -> normalised rows; cache."""

    def __init__(self, folder: str, device: str = "cpu"):
        from .judge import Judge

        self.kind = "toy-judge"
        self.name = folder
        self.cache: dict = {}
        self.judge = Judge(folder, device=device)

    def images(self, paths: list[str]):
        import torch

        todo = [p for p in dict.fromkeys(paths) if p not in self.cache]
        for i in range(0, len(todo), 64):
            chunk = todo[i : i + 64]
            for p, f in zip(chunk, self.judge.embed(chunk)):
                self.cache[p] = f
        if not paths:
            return torch.zeros((0, 1))
        return torch.stack([self.cache[p] for p in paths])

    def texts(self, texts: list[str]):
        import torch

        for t in dict.fromkeys(texts):
            if ("text", t) not in self.cache:
                mean = self.judge.embed([world.render(s) for s in scenes_from_text(t)]).mean(dim=0)
                self.cache[("text", t)] = mean / mean.norm().clamp_min(1e-12)
        return torch.stack([self.cache[("text", t)] for t in texts])
