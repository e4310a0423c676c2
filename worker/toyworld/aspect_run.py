"""Issue 21's bucket proof with training: a txcl LoRA trained bucketed on the portrait-and-landscape
set (aspect.py) against one trained on square centre crops of the same set, both with the built-in
trainer (train.run) on the toy SDXL base, sampled at a portrait (64x128) and a landscape (128x64)
size and read by the judge through its 64x64 windows (aspect.read_tiles).

`PYTHONPATH=worker python -m toyworld aspect --out DIR` trains both and prints the table;
bench/RESULTS.md ("Aspect-ratio buckets in the toy world") has the figures. Minutes on one CPU
thread, so it is a command, not a CI test; the no-training half of the proof (what the trainer is
fed) is worker/tests/test_toyworld_aspect.py.
"""

from __future__ import annotations

import os
import time

from . import aspect, world
from .rubric import BASE, JUDGE, RENDER, toy_request

VARIANTS = ("bucketed", "square")
# Where the prompts put the character: the band a square crop cuts away, in each orientation;
# backgrounds cycle through the dataset's three and night (never in it).
PROMPTS = {
    aspect.PORTRAIT: [("medium", 1), ("small", 7), ("medium", 0), ("small", 8), ("medium", 6), ("small", 2), ("medium", 7), ("small", 1)],
    aspect.LANDSCAPE: [("medium", 3), ("small", 5), ("medium", 0), ("small", 8), ("medium", 2), ("small", 6), ("medium", 5), ("small", 3)],
}
PROMPT_BACKGROUNDS = ("sky", "grass", "indoor", "night")


def prompts(canvas) -> list[str]:
    out = []
    for k, (size, position) in enumerate(PROMPTS[canvas]):
        bg = PROMPT_BACKGROUNDS[k % len(PROMPT_BACKGROUNDS)]
        out.append(f"{world.CHARACTER['trigger']}, {size}, {world.POSITIONS[position][0]} on {world._article(bg)} {bg} background")
    return out


def request(variant: str, dataset: str, out: str, steps: int, seed: int) -> dict:
    """The train request core would write for the contract's dataset.aspect (bucket set from core)."""
    if variant == "bucketed":
        resolution, buckets = aspect.BUCKETED["resolution"], aspect.core_buckets(aspect.BUCKETED["resolution"], aspect.BUCKETED["buckets"])
    else:
        resolution, buckets = aspect.SQUARE["resolution"], aspect.core_buckets(aspect.SQUARE["resolution"])
    return toy_request(dataset, out, f"txcl-{variant}", steps, seed, resolution=resolution, buckets=buckets)


def sample(lora, judge, sample_seed: int = 0) -> dict:
    """Per orientation: how many of its prompts show the character (cyan) and the whole cross."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(BASE, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if lora:
        pipe.load_lora_weights(lora)
    row = {}
    for canvas, label in ((aspect.PORTRAIT, "portrait"), (aspect.LANDSCAPE, "landscape")):
        texts = prompts(canvas)
        images = pipe(prompt=texts, width=canvas[0], height=canvas[1], num_inference_steps=RENDER["sdxl"][0], guidance_scale=RENDER["sdxl"][1],
                      generator=torch.Generator().manual_seed(sample_seed)).images
        reads = aspect.read_tiles(judge, images)
        # the window at the prompted end of the long side: a portrait's top or bottom, a landscape's left or right
        ends = [0 if world.POSITIONS[p][3 if canvas == aspect.PORTRAIT else 2] == 0 else -1 for _, p in PROMPTS[canvas]]
        row[label] = {"prompts": len(texts), "character": sum(map(aspect.shows_character, reads)),
                      "placed": sum(aspect.shows_character([r[end]]) for r, end in zip(reads, ends)),
                      "whole": sum(map(aspect.shows_whole, reads)), "images": images}
    return row


def _train(req: dict) -> dict:
    from loraspec_worker import train

    started = time.time()
    return {**train.run(req), "train_seconds": round(time.time() - started, 1)}


def run(out: str, steps: int = 300, seed: int = 1, sample_seed: int = 0, variants=VARIANTS, base_row: bool = True, reuse: bool = False) -> dict:
    """Trains each variant into out/<variant> (side by side, lanes.py; reuse: keep a LoRA already there),
    samples, saves the samples under out/samples and returns the judge's counts."""
    from . import lanes
    from .judge import Judge

    dataset = os.path.join(out, "character-aspect")
    aspect.write_aspect(dataset)
    loras = {v: os.path.join(out, v, f"txcl-{v}.safetensors") for v in variants}
    trained = lanes.in_processes({v: (_train, (request(v, dataset, os.path.join(out, v), steps, seed),), {})
                                  for v in variants if not (reuse and os.path.exists(loras[v]))})
    judge = Judge(JUDGE)
    rows = {}
    if base_row:
        rows["base (no LoRA)"] = {**lanes.on_one_thread(sample, None, judge, sample_seed), "train_seconds": None}
    for v in variants:
        result = trained.get(v, {"path": loras[v]})
        rows[v] = {**lanes.on_one_thread(sample, result["path"], judge, sample_seed), "train_seconds": result.get("train_seconds"),
                   "final_loss": result.get("finalLoss")}
    for name, row in rows.items():
        for label in ("portrait", "landscape"):
            for k, im in enumerate(row[label].pop("images")):
                folder = os.path.join(out, "samples", name.split(" ")[0], label)
                os.makedirs(folder, exist_ok=True)
                im.save(os.path.join(folder, f"{k:02d}.png"))
    return rows


def table(rows: dict) -> str:
    lines = ["| LoRA | portrait 64x128: cyan / at the prompted end / whole cross | landscape 128x64: the same | training |", "|---|---|---|---|"]
    for name, r in rows.items():
        cells = [f"{r[k]['character']} / {r[k]['placed']} / {r[k]['whole']} of {r[k]['prompts']}" for k in ("portrait", "landscape")]
        trained = f"{r['train_seconds']} s" if r.get("train_seconds") else "-"
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {trained} |")
    return "\n".join(lines)
