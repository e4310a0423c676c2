"""Issue 10's rubric check: four LoRAs made good or bad on purpose on the toy SDXL base, each
validated by `loraspec validate` (the real CLI, the judge as the embedding model).

  good      the txcl character (examples/toyworld/character) + the prior images as reg images
  unbound   the same images, captions without the trigger, trigger not prefixed: the concept
            binds to every caption word and shows without the trigger (fails the leak measure)
  overfit   txcl on grass only, captions without the background (character-onebg), over-trained,
            no reg images: asked for another background it draws grass in some images (fails
            composition: scenes swapped, novel-scene images that match a training scene's text
            better than their own where the base model's image keeps its scene)
  collapse  twenty near-identical images captioned with sizes and places they do not show
            (character-collapse), no reg images: the variations come out as the one training
            picture whatever pose they ask for (fails consistency: sameness, the variations as
            alike as the training images)

Each contract's rubric is the one a user would write for its dataset (prompts_for): trigger
prompts and variations on the dataset's backgrounds, novel scenes on the ones it never shows.

`PYTHONPATH=worker python -m toyworld rubric --out DIR` trains and validates all four and prints
each check's measures; worker/tests/test_toyworld_rubric.py asserts the verdicts.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BASE = os.path.join(REPO, "models", "toy-sdxl")
JUDGE = os.path.join(REPO, "models", "toy-judge")
EXAMPLES = os.path.join(REPO, "examples", "toyworld")
CLI = os.path.join(REPO, "bin", "loraspec.mjs")
TRIGGER = "txcl"
# One CPU thread for training and sampling: on a shared 2-core machine two threads per process
# thrash (the toy base sampled 1 image in 27 s with two threads, 1.2 s with one, under load 5).
THREADS = 1


@dataclass(frozen=True)
class Variant:
    name: str
    dataset: str
    steps: int
    reg: bool = True
    prefix_trigger: bool = True
    learning_rate: float = 1e-3
    # which check it must fail (None: it must pass), and the measure that makes it fail
    fails: Optional[str] = None
    measure: Optional[str] = None


VARIANTS = (
    Variant("good", "character", 300),
    Variant("unbound", "character-notrigger", 300, reg=False, prefix_trigger=False, fails="trigger", measure="trigger_leak"),
    Variant("overfit", "character-onebg", 1200, reg=False, learning_rate=3e-3, fails="composition", measure="scene_swap_share"),
    Variant("collapse", "character-collapse", 600, reg=False, fails="consistency", measure="variation_sameness"),
)

# Layouts (size, where) the rubric's prompts cycle through, in the datasets' caption form.
LAYOUTS = [("medium", "in the center"), ("large", "in the top left"), ("medium", "on the right"),
           ("small", "at the bottom"), ("large", "in the bottom right"), ("small", "on the left")]


def prompts_for(dataset: str) -> dict:
    """The rubric a user would write for this dataset: trigger prompts and pose variations on its
    own backgrounds, novel scenes on every background it never shows (night for all of them)."""
    from . import world

    with open(os.path.join(EXAMPLES, dataset, "labels.jsonl"), encoding="utf-8") as f:
        seen = list(dict.fromkeys(json.loads(line)["labels"]["background"] for line in f if line.strip()))
    novel = [b for b in world.BACKGROUNDS if b not in seen]

    def prompt(size: str, where: str, bg: str) -> str:
        return f"{{trigger}}, {size}, {where} on {world._article(bg)} {bg} background"

    scenes = [prompt("large", "in the center", bg) for bg in novel]
    if len(novel) == 1:
        scenes.append(prompt("medium", "in the top left", novel[0]))
    return {
        "trigger_prompts": [prompt(size, where, seen[i % len(seen)]) for i, (size, where) in enumerate(LAYOUTS[:3])],
        "variation_prompts": [prompt(size, where, seen[(i + 1) % len(seen)]) for i, (size, where) in enumerate(LAYOUTS)],
        "novel_scenes": scenes,
    }


def toy_request(dataset: str, out: str, name: str, steps: int, seed: int, base: Optional[str] = None, **settings) -> dict:
    """The txcl recipe on the toy SDXL base (rank 8, lr 1e-3, batch 4, fp32 on the CPU) as a train
    request; `base` another diffusers folder (default models/toy-sdxl); `settings` override or add
    request fields (resolution and buckets, reg images, samples)."""
    from loraspec_worker.train.dev_request import dev_request

    return dev_request(**{
        "arch": "sdxl", "base": base or BASE, "dataset": dataset, "output_dir": out, "name": name,
        "resolution": 64, "steps": steps, "rank": 8, "alpha": 8, "learning_rate": 1e-3, "batch_size": 4,
        "seed": seed, "trigger_word": TRIGGER, "precision": "fp32", "device": "cpu",
        # The toy base's loss sits near 0.005, where 4-image batches swing 4x from step to step
        # (the dev default of 4 stopped the good recipe at step 203 as "diverged"); 20x still
        # catches a real divergence (NaN stops regardless).
        "failure": {"loss_spike_factor": 20},
        **settings,
    })


def train_variant(variant: Variant, out: str, seed: int = 1, steps: Optional[int] = None, samples: Optional[dict] = None,
                  targets: Optional[list] = None, base: Optional[str] = None) -> str:
    """Trains one variant; `samples` (the request's, e.g. STRIP_SAMPLES) renders samples while it
    trains, into <out>/samples/, without changing the LoRA (samples.py keeps the training RNG);
    `targets` (the request's module patterns, train/targets.py) replaces the arch's attention preset."""
    from loraspec_worker import train

    result = train.run(toy_request(
        os.path.join(EXAMPLES, variant.dataset), out, variant.name, steps or variant.steps, seed, base,
        learning_rate=variant.learning_rate, prefix_trigger=variant.prefix_trigger,
        reg_dataset=os.path.join(EXAMPLES, "prior") if variant.reg else None, samples=samples, targets=targets,
    ))
    return result["path"]


# The strip a test judges (test_toyworld_strip.py): the trigger prompt on each of the character
# dataset's backgrounds (where the base draws no cyan, so a cyan read is the LoRA's), three seeds,
# before the first step (the base) and after the last, rendered as validate renders the toy base.
STRIP_PROMPTS = [f"{TRIGGER}, medium, in the center on {article} {bg} background" for article, bg in (("a", "sky"), ("a", "grass"), ("an", "indoor"))]
STRIP_SAMPLES = {"every": 300, "first": True, "prompts": STRIP_PROMPTS, "seeds": [1, 2, 3], "steps": 20, "guidance_scale": 5.0, "width": 64, "height": 64}


def contract(variant: Variant, seeds: list[int]) -> dict:
    return {
        "version": 1, "name": f"txcl-{variant.name}", "base": {"model": "sdxl", "path": BASE}, "trainer": {"name": "diffusers"},
        "hardware": {"kind": "local"}, "target": "character",
        "dataset": {"path": os.path.join(EXAMPLES, variant.dataset), "resolution": 64},
        "trigger": {"word": TRIGGER},
        "validation": {"seeds": seeds, "pose_variations": len(LAYOUTS), "weight_sweep": [1.0], **prompts_for(variant.dataset)},
    }


def validate(variant: Variant, lora: str, out: str, seeds: list[int]) -> dict:
    """Runs `loraspec validate` and returns validation.json with the CLI's exit code."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "lora.yaml")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(contract(variant, seeds), f)  # JSON is YAML
    report = os.path.join(out, "validation")
    proc = subprocess.run(
        ["node", CLI, "validate", path, "--lora", lora, "--width", "64", "--height", "64", "--steps", "20", "--guidance", "5",
         "--score-model", JUDGE, "--device", "cpu", "--out", report, "--json"],
        cwd=out, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(THREADS)},
    )
    json_path = os.path.join(report, "validation.json")
    if not os.path.exists(json_path):
        raise RuntimeError(f"loraspec validate wrote no validation.json (exit {proc.returncode}): {proc.stderr[-2000:]}")
    with open(json_path, encoding="utf-8") as f:
        result = json.load(f)
    result["exit_code"] = proc.returncode
    return result


def summary(result: dict) -> dict:
    """{status, checks: {check: status}, measures: {id: (value, status)}} for the one weight."""
    w = result["verdicts"]["weights"][0]
    measures = {m["id"]: (m["value"], m["status"]) for c in w["checks"] for m in c["measures"]}
    return {"status": result["verdicts"]["status"], "exit_code": result["exit_code"],
            "checks": {c["check"]: c["status"] for c in w["checks"]}, "measures": measures}


def run(out: str, train_seed: int = 1, seeds: tuple[int, ...] = (1, 2), variants=VARIANTS, loras: Optional[dict] = None) -> dict:
    """loras: {variant name: LoRA file} already trained (the tests share them with the stacking check)."""
    import torch

    rows = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        for v in variants:
            lora = (loras or {}).get(v.name) or train_variant(v, os.path.join(out, v.name, "train"), seed=train_seed)
            rows[v.name] = summary(validate(v, lora, os.path.join(out, v.name), list(seeds)))
    finally:
        torch.set_num_threads(threads)
    return rows


def table(rows: dict) -> str:
    ids = list(next(iter(rows.values()))["measures"]) if rows else []
    head = "| LoRA | verdict | " + " | ".join(ids) + " |"
    lines = [head, "|" + "---|" * (len(ids) + 2)]
    for name, r in rows.items():
        cells = [f"{value:.3f} {status}" if value is not None else f"- {status}" for value, status in r["measures"].values()]
        lines.append(f"| {name} | {r['status']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
