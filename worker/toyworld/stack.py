"""Issue 10's stacking check on the toy SDXL base: the `txcl` character LoRA at 0.5 and the `txst`
style LoRA at 0.3 together; the judge reads the character's colour (cyan) and the style's fill
(striped) in the same samples. Each alone and the base model, same prompts and seeds, for
comparison.

`PYTHONPATH=worker python -m toyworld stack --out DIR` prints the shares. Not a test yet: the toy
VAE cannot reconstruct striped fills, so the style never shows (bench/RESULTS.md, "Stacking";
worker/tests/test_toyworld.py::test_toy_vae_keeps_the_style_concepts_stripes is a strict xfail).
"""

from __future__ import annotations

import os

from . import world
from .rubric import BASE, EXAMPLES, JUDGE, THREADS

WEIGHTS = {"txcl": 0.5, "txst": 0.3}
# Both triggers, the style's first (as in its captions), then the character's caption form.
PLACES = [
    ("medium", "in the center", "sky"),
    ("large", "in the top left", "grass"),
    ("medium", "on the right", "indoor"),
    ("large", "at the bottom", "sky"),
    ("medium", "in the top right", "grass"),
    ("large", "on the left", "indoor"),
    ("medium", "in the bottom left", "sky"),
    ("large", "in the center", "grass"),
]


def prompts() -> list[str]:
    return [f"txst, txcl, {size}, {where} on {world._article(bg)} {bg} background" for size, where, bg in PLACES]


def train_pair(out: str, seed: int = 1, steps: int = 300) -> dict:
    from loraspec_worker import train
    from loraspec_worker.train.dev_request import dev_request

    paths = {}
    for name, dataset in (("txcl", "character"), ("txst", "style")):
        paths[name] = train.run(dev_request(**{
            "arch": "sdxl", "base": BASE, "dataset": os.path.join(EXAMPLES, dataset), "output_dir": os.path.join(out, name), "name": name,
            "resolution": 64, "steps": steps, "rank": 8, "alpha": 8, "learning_rate": 1e-3, "batch_size": 4, "seed": seed,
            "trigger_word": name, "reg_dataset": os.path.join(EXAMPLES, "prior"), "precision": "fp32", "device": "cpu",
        }))["path"]
    return paths


def shares(loras: dict, seed: int = 0) -> dict:
    """Share of samples the judge reads as cyan (character) and as striped (style), per adapter set."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    from .judge import Judge

    pipe = StableDiffusionXLPipeline.from_pretrained(BASE, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    for name, path in loras.items():
        pipe.load_lora_weights(path, adapter_name=name)
    judge = Judge(JUDGE)
    sets = {"stack": WEIGHTS, **{f"{n} alone": {n: w} for n, w in WEIGHTS.items()}, "base": {}}
    out = {}
    for label, weights in sets.items():
        if weights:
            pipe.enable_lora()
            pipe.set_adapters(list(weights), adapter_weights=list(weights.values()))
        else:
            pipe.disable_lora()
        images = pipe(prompt=prompts(), num_inference_steps=20, guidance_scale=5.0, generator=torch.Generator().manual_seed(seed)).images
        reads = judge.read(images)
        n = len(reads)
        out[label] = {
            "character": sum(world.CHARACTER["colour"] in r["colours"] for r in reads) / n,
            "style": sum(r["fill"] == world.STYLE["fill"] for r in reads) / n,
            "both": sum(world.CHARACTER["colour"] in r["colours"] and r["fill"] == world.STYLE["fill"] for r in reads) / n,
        }
    return out


def run(out: str, seed: int = 1, sample_seed: int = 0) -> dict:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return shares(train_pair(out, seed=seed), seed=sample_seed)
    finally:
        torch.set_num_threads(threads)
