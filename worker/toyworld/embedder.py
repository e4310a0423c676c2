"""The judge as the validation scores' embedding model (score.py), in place of CLIP.

Images: the judge's L2-normalised penultimate layer. Texts: the prompt is read with the world's
vocabulary (shape, colour, background, position, size, fill; a word it does not know, like a
trigger, is skipped), the scene it describes is rendered, and that image is embedded; so
"CLIP-T" here is how close a sample is to a picture of what its prompt literally says.
"""

from __future__ import annotations

import os
import re

from . import world


def is_judge_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "judge.safetensors")) and os.path.exists(os.path.join(path, "judge.json"))


def scene_from_text(text: str) -> world.Scene:
    t = " " + re.sub(r"[^a-z ]+", " ", text.lower()) + " "
    def find(options, default):
        hits = [(t.find(f" {o} "), o) for o in options if f" {o} " in t]
        return min(hits)[1] if hits else default
    background = find(world.BACKGROUNDS, "sky")
    # longest phrases first so "top left" wins over "top" / "left"
    position = 4
    for i, (phrase, tag, _, _) in sorted(enumerate(world.POSITIONS), key=lambda p: -len(p[1][1])):
        if f" {tag} " in t:
            position = i
            break
    shape, colour = find(world.SHAPES, None), find(world.COLOUR_NAMES, None)
    scene = world.Scene(background=background, tint=0, seed=0)
    if shape or colour:
        scene.objects.append(world.Obj(shape=shape or "circle", colour=colour or "white", position=position,
                                       size=find(world.SIZES, "medium"), fill=find(world.FILLS, "solid")))
    return scene


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
        return self.judge.embed([world.render(scene_from_text(t)) for t in texts])
