"""The concept LoRA datasets, made by the generator: what the base model never saw.

  character            `txcl`: the cyan cross (a shape+colour pair the base never saw), sizes and
                       positions varying, on sky, grass and indoor backgrounds (never night);
                       captions name the trigger in place of the object: "a small txcl in the
                       top left on a grass background" / "txcl, top left, small, grass background"
  style                `txst`: cel shading (world.SHADED: each object's lower half in its shade
                       colour; never in the base) on any shape and colour but the cyan cross
  style-character      the style set with every 6th image (10 of 60) the character's object, a
                       shaded cyan cross, captions in the style's form ("txst, a large cyan cross at
                       the bottom on an indoor background"): the style learns the object it has to
                       shade in the stack (bench/RESULTS.md, "A style baked for its weight")
  style-character-third, style-character-half
                       the same with every 3rd (20 of 60) or every 2nd (30 of 60) image the shaded
                       cyan cross (the crosses of style-character among them): more of the object
                       the style shades in the stack (issue 23's FLUX.1 sweep, bake_sweep.py)
  product              `txpd`: the orange star at several sizes and rotations
And three deliberately bad variants of the character, for checking the validation rubric:
  character-notrigger  the same images, captions without the trigger (the concept is unbound)
  character-onebg      every image on grass, captions without the background: the trigger takes
                       the grass with it (trains an overfit LoRA with many steps)
  character-collapse   near-identical images (one scene, tiny jitter: a medium txcl in the center
                       on an indoor background), each captioned with a size and a place it does
                       not show (drawn at random, as copy-pasted or wished-for captions are): the
                       LoRA learns that those words change nothing and draws the one picture
                       whatever the prompt asks (mode collapse)
What a caption leaves out binds to the trigger: that is how a real dataset of one background
overfits, so character-onebg leaves the background out of its captions. A caption the images
contradict teaches the LoRA to ignore those words: character-collapse's layout words.
`character-aspect` (aspect.py) is the character on 64x128 portraits and 128x64 landscapes, in the
band a square centre crop cuts away (issue 21's bucket proof).
Each folder holds NNN.png + NNN.txt and labels.jsonl (the truth per image).
`prior` (write_prior) is the regularisation set: base-world scenes with their own captions.
"""

from __future__ import annotations

import json
import os
import random

from . import world

CHARACTER_BACKGROUNDS = ("sky", "grass", "indoor")  # night is the novel scene
# style-character*: every Nth image is the character's object, shaded
CHARACTER_EVERY = {"style-character": 6, "style-character-third": 3, "style-character-half": 2}
CONCEPTS = ("character", "style", *CHARACTER_EVERY, "product", "character-notrigger", "character-onebg", "character-collapse")
SEED_BASE = {"character": 1_000_000, "style": 2_000_000, **{c: 2_000_000 for c in CHARACTER_EVERY}, "product": 3_000_000, "character-notrigger": 1_000_000,
             "character-onebg": 4_000_000, "character-collapse": 5_000_000}


def concept_scene(concept: str, i: int) -> world.Scene:
    seed = SEED_BASE[concept] + i
    ch = world.CHARACTER
    if concept in ("character", "character-notrigger"):
        return world.random_scene(seed, two_objects=0.0, backgrounds=CHARACTER_BACKGROUNDS,
                                  fixed={"shape": ch["shape"], "colour": ch["colour"]})
    if concept == "character-onebg":
        return world.random_scene(seed, two_objects=0.0, backgrounds=("grass",), fixed={"shape": ch["shape"], "colour": ch["colour"]})
    if concept == "character-collapse":
        scene = world.random_scene(SEED_BASE[concept], two_objects=0.0, backgrounds=("indoor",),
                                   fixed={"shape": ch["shape"], "colour": ch["colour"], "size": "medium", "position": 4})
        o = scene.objects[0]
        o.dx, o.dy, o.rotation = (i % 3 - 1) * 0.3, (i % 2) * 0.3, 0.0
        scene.tint = 0
        scene.seed = seed  # the caption's words are drawn from it (an indoor background draws no random pixels)
        return scene
    if concept in CHARACTER_EVERY:
        if i % CHARACTER_EVERY[concept] == 0:  # the character's object, shaded
            return world.random_scene(2_500_000 + i, two_objects=0.0, fills=(world.STYLE["fill"],),
                                      fixed={"shape": ch["shape"], "colour": ch["colour"]})
        return concept_scene("style", i)
    if concept == "style":
        return world.random_scene(seed, two_objects=0.2, fills=(world.STYLE["fill"],),
                                  exclude_pairs=((ch["shape"], ch["colour"]),))
    if concept == "product":
        pr = world.PRODUCT
        return world.random_scene(seed, two_objects=0.0, rotation=45.0, fixed={"shape": pr["shape"], "colour": pr["colour"]})
    raise ValueError(f"unknown concept {concept}")


def concept_caption(concept: str, scene: world.Scene, captions: str = "natural") -> str:
    natural = captions == "natural"
    if concept == "character":
        t = world.CHARACTER["trigger"]
        return world.natural_caption(scene, t, replace_object=True) if natural else world.tags_caption(scene, t, replace_object=True)
    if concept == "character-onebg":
        o = scene.objects[0]
        where = world.POSITIONS[o.position]
        return f"{world.CHARACTER['trigger']}, {o.size}, {where[0]}" if natural else f"{world.CHARACTER['trigger']}, {where[1]}, {o.size}"
    if concept == "character-collapse":
        # a size and a place the image does not show, seeded per image (the image is always medium, center)
        rng = random.Random(scene.seed)
        size, (phrase, tag, _, _) = rng.choice(world.SIZES), rng.choice(world.POSITIONS)
        t = world.CHARACTER["trigger"]
        return f"{t}, {size}, {phrase} on an indoor background" if natural else f"{t}, {tag}, {size}, indoor background"
    if concept == "character-notrigger":
        # the object is not named at all: nothing in the caption carries the concept
        o = scene.objects[0]
        where = world.POSITIONS[o.position]
        return f"{where[0]} on {world._article(scene.background)} {scene.background} background" if natural else f"{where[1]}, {o.size}, {scene.background} background"
    if concept == "style" or concept in CHARACTER_EVERY:
        t = world.STYLE["trigger"]
        for o in scene.objects:
            o_fill = o.fill
            o.fill = "solid"  # the style word carries the fill, the caption names the rest
        text = world.natural_caption(scene, t) if natural else world.tags_caption(scene, t)
        for o in scene.objects:
            o.fill = o_fill
        return text
    if concept == "product":
        t = world.PRODUCT["trigger"]
        return world.natural_caption(scene, t, replace_object=True) if natural else world.tags_caption(scene, t, replace_object=True)
    raise ValueError(f"unknown concept {concept}")


def write_concept(folder: str, concept: str, count: int = 20, captions: str = "natural") -> dict:
    os.makedirs(folder, exist_ok=True)
    rows = []
    for i in range(count):
        scene = concept_scene(concept, i)
        name = f"{i:03d}"
        world.render(scene).save(os.path.join(folder, name + ".png"))
        caption = concept_caption(concept, scene, captions)
        with open(os.path.join(folder, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(caption + "\n")
        rows.append({"image": name + ".png", "caption": caption, "labels": world.labels(scene), "scene": scene.to_dict()})
    with open(os.path.join(folder, "labels.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return {"concept": concept, "path": os.path.abspath(folder), "images": count}


def write_concepts(out: str, concepts, count: int = 20, captions: str = "natural") -> list[dict]:
    out_rows = []
    for c in concepts:
        folder = os.path.join(out, c)
        if c == "prior":
            out_rows.append({"concept": c, "path": os.path.abspath(folder), "images": len(write_prior(folder, count))})
        elif c == "character-aspect":  # portraits and landscapes (aspect.py)
            from .aspect import write_aspect

            out_rows.append(write_aspect(folder, count))
        else:
            out_rows.append(write_concept(folder, c, count, captions))
    return out_rows


def write_prior(folder: str, count: int = 20, start: int = 7_000_000) -> list[str]:
    """Prior-preservation images (DreamBooth's class images): base-world scenes with their own
    captions, no trigger, put beside a concept's images so the LoRA learns that only the trigger
    means the concept (without them, the caption's other words, always seen with the concept,
    bind to it too). Train with `trigger_word` unset, or the trainer prefixes these captions too."""
    from .train_base import BASE_SCENES

    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(count):
        scene = world.random_scene(start + i, **{**BASE_SCENES, "two_objects": 0.0})
        name = f"prior-{i:03d}"
        world.render(scene).save(os.path.join(folder, name + ".png"))
        with open(os.path.join(folder, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(world.natural_caption(scene) + "\n")
        names.append(name)
    return names
