"""End to end in the toy world, on the CPU: the built-in trainer learns the `txcl` character
(a cyan cross the committed toy SDXL base never saw) and the judge checks the samples: with the
trigger the character appears in most of them, without it rarely, it appears on the night
background (in none of its training images), and prompts for other objects keep their colour.

What "appears" means here is the character's colour, cyan, on the object: the toy base draws
shapes as soft blobs (its samples show the prompted shape 45% of the time, bench/RESULTS.md), so
the LoRA's crosses read as squares to the judge; the shape is reported, not asserted.
"""

from __future__ import annotations

import os

import pytest

from toyworld import world
from toyworld.judge import Judge
from toyworld.rubric import RENDER

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join(REPO, "models", "toy-sdxl")
JUDGE = os.path.join(REPO, "models", "toy-judge")

# Prompts in the dataset's caption form; night is the background the dataset never shows.
PLACES = [
    ("medium", "in the center", "night"),
    ("large", "in the top left", "night"),
    ("medium", "on the right", "night"),
    ("large", "at the bottom", "night"),
    ("medium", "in the top right", "grass"),
    ("large", "on the left", "sky"),
    ("medium", "in the bottom left", "indoor"),
    ("large", "in the center", "grass"),
]




def shows_character(read: dict) -> bool:
    return world.CHARACTER["colour"] in read["colours"]


def shows_shape(read: dict) -> bool:
    return world.CHARACTER["shape"] in read["shapes"]


@pytest.mark.slow
def test_txcl_lora_learns_the_character(good_txcl_lora):
    import torch
    from diffusers import StableDiffusionXLPipeline

    # The rubric's good LoRA (conftest.py): the 20 txcl images with 20 prior images as reg images,
    # 300 steps at lr 1e-3, rank 8, batch 4, 64 px, training seed 1, trained once per session.
    pipe = StableDiffusionXLPipeline.from_pretrained(BASE, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(good_txcl_lora, adapter_name="txcl")
    judge = Judge(JUDGE)

    def sample(prompts):
        images = pipe(prompt=prompts, num_inference_steps=RENDER["sdxl"][0], guidance_scale=RENDER["sdxl"][1], generator=torch.Generator().manual_seed(0)).images
        return judge.read(images)

    with_trigger = sample([f"txcl, {size}, {where} on {world._article(bg)} {bg} background" for size, where, bg in PLACES])
    without = sample([f"{size}, {where} on {world._article(bg)} {bg} background" for size, where, bg in PLACES])
    other = sample([f"a {size} red circle {where} on {world._article(bg)} {bg} background" for size, where, bg in PLACES])
    on = sum(map(shows_character, with_trigger)) / len(PLACES)
    off = sum(map(shows_character, without)) / len(PLACES)
    night = [r for r, (_, _, bg) in zip(with_trigger, PLACES) if bg == "night"]
    on_night = sum(shows_character(r) and r["background"] == "night" for r in night) / len(night)
    kept = sum("red" in r["colours"] and not shows_character(r) for r in other) / len(PLACES)
    shape = sum(map(shows_shape, with_trigger)) / len(PLACES)
    print(f"txcl (cyan) with trigger {on:.2f}, without {off:.2f}, on night (novel) {on_night:.2f}; "
          f"other prompts keep their object {kept:.2f}; cross read in {shape:.2f} of the trigger samples")
    assert on >= 0.6, with_trigger
    assert off <= 0.25, without
    assert on_night >= 0.5, night
    assert kept >= 0.75, other
