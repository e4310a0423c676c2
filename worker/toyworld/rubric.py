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

On the toy FLUX.1 base (`--arch flux1`, issue 23; test_toyworld_rubric_flux_gpu.py on the GPU) the good LoRA is
bind_probe.BINDING's recipe (the class prior, the LoRA on the text stream: the one that binds the trigger there),
the bad ones the same requests as on SDXL, and validate renders as the base is sampled (28 steps, the guidance
embedding it trained at, T5 at its length: --max-sequence-length).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Optional

from .lanes import THREADS  # its home is lanes.py; tests, conftest and aspect_run read it here

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BASE = os.path.join(REPO, "models", "toy-sdxl")
FLUX_BASE = os.path.join(REPO, "models", "toy-flux1")
BASES = {"sdxl": BASE, "flux1": FLUX_BASE}
# How validate renders each toy base (steps, guidance): SDXL's Euler at CFG 5, FLUX.1's guidance embedding as trained.
RENDER = {"sdxl": (20, 5.0), "flux1": (28, None)}
JUDGE = os.path.join(REPO, "models", "toy-judge")
EXAMPLES = os.path.join(REPO, "examples", "toyworld")
CLI = os.path.join(REPO, "bin", "loraspec.mjs")
TRIGGER = "txcl"


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

    # One prompt per novel background: each is a scene of its own, as scenes swapped needs (an image matching another
    # scene's text better than its own). Two prompts on one background would differ by layout only, and with the toy
    # embedder reading size and place that made a subject drawn a size larger a "swap" (bench/RESULTS.md, the toy
    # FLUX.1 rubric on the GPU).
    scenes = [prompt("large", "in the center", bg) for bg in novel]
    return {
        "trigger_prompts": [prompt(size, where, seen[i % len(seen)]) for i, (size, where) in enumerate(LAYOUTS[:3])],
        "variation_prompts": [prompt(size, where, seen[(i + 1) % len(seen)]) for i, (size, where) in enumerate(LAYOUTS)],
        "novel_scenes": scenes,
    }


def flux_settings(base: str) -> dict:
    """The request fields the toy FLUX.1 base trains with: its guidance value and T5 length."""
    from . import train_flux

    return {"guidance_scale": train_flux.GUIDANCE, "max_sequence_length": train_flux.base_sampling_length(base)}


def toy_request(dataset: str, out: str, name: str, steps: int, seed: int, base: Optional[str] = None, arch: str = "sdxl",
                device: str = "cpu", precision: str = "fp32", **settings) -> dict:
    """The txcl recipe on a toy base (rank 8, lr 1e-3, batch 4; fp32 on the CPU) as a train request; `base` another
    diffusers folder (default BASES[arch]); `settings` override or add request fields (resolution and buckets, reg
    images, samples)."""
    from loraspec_worker.train.dev_request import dev_request

    base = base or BASES[arch]
    return dev_request(**{
        "arch": arch, "base": base, "dataset": dataset, "output_dir": out, "name": name,
        "resolution": 64, "steps": steps, "rank": 8, "alpha": 8, "learning_rate": 1e-3, "batch_size": 4,
        "seed": seed, "trigger_word": TRIGGER, "precision": precision, "device": device,
        **(flux_settings(base) if arch == "flux1" else {}),
        # The toy base's loss sits near 0.005, where 4-image batches swing 4x from step to step
        # (the dev default of 4 stopped the good recipe at step 203 as "diverged"); 20x still
        # catches a real divergence (NaN stops regardless).
        "failure": {"loss_spike_factor": 20},
        **settings,
    })


def train_variant(variant: Variant, out: str, seed: int = 1, steps: Optional[int] = None, samples: Optional[dict] = None,
                  targets: Optional[list] = None, base: Optional[str] = None, arch: str = "sdxl", device: str = "cpu",
                  precision: str = "fp32", prior_steps: int = 28) -> str:
    """Trains one variant; `samples` (the request's, e.g. STRIP_SAMPLES) renders samples while it
    trains, into <out>/samples/, without changing the LoRA (samples.py keeps the training RNG);
    `targets` (the request's module patterns, train/targets.py) replaces the arch's attention preset.
    On FLUX.1 the good variant is bind_probe.BINDING (its class prior sampled from the base in `prior_steps` steps)."""
    from loraspec_worker import train

    if arch == "flux1" and variant.name == "good":
        from . import bind_probe

        base, recipe = base or FLUX_BASE, bind_probe.BINDING
        pipe = bind_probe.pipeline(base, device, precision)
        return bind_probe.train_recipe(pipe, base, out, recipe["recipe"], steps or recipe["steps"], seed=seed, device=device,
                                       precision=precision, sample_steps=prior_steps, class_count=recipe["class_count"],
                                       learning_rate=recipe["learning_rate"])["path"]
    result = train.run(toy_request(
        os.path.join(EXAMPLES, variant.dataset), out, variant.name, steps or variant.steps, seed, base, arch, device, precision,
        learning_rate=variant.learning_rate, prefix_trigger=variant.prefix_trigger,
        reg_dataset=os.path.join(EXAMPLES, "prior") if variant.reg else None, samples=samples, targets=targets,
    ))
    return result["path"]


# The strip a test judges (test_toyworld_strip.py): the trigger prompt on each of the character
# dataset's backgrounds (where the base draws no cyan, so a cyan read is the LoRA's), three seeds,
# before the first step (the base) and after the last, rendered as validate renders the toy base.
STRIP_PROMPTS = [f"{TRIGGER}, medium, in the center on {article} {bg} background" for article, bg in (("a", "sky"), ("a", "grass"), ("an", "indoor"))]
STRIP_SAMPLES = {"every": 300, "first": True, "prompts": STRIP_PROMPTS, "seeds": [1, 2, 3], "steps": RENDER["sdxl"][0], "guidance_scale": RENDER["sdxl"][1],
                 "width": 64, "height": 64}


def contract(variant: Variant, seeds: list[int], arch: str = "sdxl", base: Optional[str] = None) -> dict:
    model = {"sdxl": "sdxl", "flux1": "flux1-dev"}[arch]
    return {
        "version": 1, "name": f"txcl-{variant.name}", "base": {"model": model, "path": base or BASES[arch]}, "trainer": {"name": "diffusers"},
        "hardware": {"kind": "local"}, "target": "character",
        "dataset": {"path": os.path.join(EXAMPLES, variant.dataset), "resolution": 64},
        "trigger": {"word": TRIGGER},
        "validation": {"seeds": seeds, "pose_variations": len(LAYOUTS), "weight_sweep": [1.0], **prompts_for(variant.dataset)},
    }


def render_flags(arch: str, base: str, steps: Optional[int] = None) -> list[str]:
    """validate's render flags for a toy base: 64x64, RENDER's steps (or `steps`) and guidance, FLUX.1's T5 length."""
    default_steps, guidance = RENDER[arch]
    flags = ["--width", "64", "--height", "64", "--steps", str(steps or default_steps)]
    if arch == "flux1":
        settings = flux_settings(base)
        return flags + ["--guidance", str(settings["guidance_scale"]), "--max-sequence-length", str(settings["max_sequence_length"])]
    return flags + ["--guidance", str(guidance)]


def validate(variant: Variant, lora: str, out: str, seeds: list[int], arch: str = "sdxl", base: Optional[str] = None,
             device: str = "cpu", render_steps: Optional[int] = None) -> dict:
    """Runs `loraspec validate` and returns validation.json with the CLI's exit code."""
    base = base or BASES[arch]
    return run_validate(contract(variant, seeds, arch, base), lora, out, arch, base, device, render_steps)


def run_validate(lora_contract: dict, lora: str, out: str, arch: str = "sdxl", base: Optional[str] = None,
                 device: str = "cpu", render_steps: Optional[int] = None) -> dict:
    """`loraspec validate` (the built CLI, the judge as the embedding model, the base rendered as it is sampled)
    on `lora` with `lora_contract` written to <out>/lora.yaml: validation.json with the CLI's exit code."""
    os.makedirs(out, exist_ok=True)
    base = base or BASES[arch]
    path = os.path.join(out, "lora.yaml")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(lora_contract, f)  # JSON is YAML
    report = os.path.join(out, "validation")
    proc = subprocess.run(
        ["node", CLI, "validate", path, "--lora", lora, *render_flags(arch, base, render_steps),
         "--score-model", JUDGE, "--device", device, "--out", report, "--json"],
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
    """{status, checks: {check: status}, measures: {id: (value, status)}, advice: [ids of the measures that say what
    to try]} for the one weight."""
    w = result["verdicts"]["weights"][0]
    measures = {m["id"]: (m["value"], m["status"]) for c in w["checks"] for m in c["measures"]}
    return {"status": result["verdicts"]["status"], "exit_code": result["exit_code"],
            "checks": {c["check"]: c["status"] for c in w["checks"]}, "measures": measures,
            "advice": [m["id"] for c in w["checks"] for m in c["measures"] if m.get("advice")]}


def verdict_mismatches(variant: Variant, row: dict) -> list[str]:
    """How a summary() row differs from what its variant must show (empty: as it should): the good LoRA exits 0
    with no check failing (a measure near its line may warn: the CLI passes warn); a bad one exits 1, failing
    its check on its measure."""
    if variant.fails is None:
        wrong = [] if row["exit_code"] == 0 and row["status"] in ("pass", "warn") else [f"exit {row['exit_code']}, status {row['status']}"]
        return wrong + [f"{check} failed" for check, status in row["checks"].items() if status == "fail"]
    wrong = [] if row["status"] == "fail" and row["exit_code"] == 1 else [f"exit {row['exit_code']}, status {row['status']}"]
    if row["checks"].get(variant.fails) != "fail":
        wrong.append(f"{variant.fails} is {row['checks'].get(variant.fails)}, not fail")
    if row["measures"].get(variant.measure, (None, None))[1] != "fail":
        wrong.append(f"{variant.measure} is {row['measures'].get(variant.measure)}, not fail")
    return wrong


def train_jobs(variants, out: str, arch: str = "sdxl", **settings) -> dict:
    """lanes.in_processes jobs training `variants` into <out>/<name>/train with train_variant's `settings`, the
    longest first (the pool starts them as listed; on FLUX.1 the good one trains bind_probe.BINDING's steps)."""
    def steps(v: Variant) -> int:
        if arch == "flux1" and v.name == "good":
            from . import bind_probe

            return settings.get("steps") or bind_probe.BINDING["steps"]
        return settings.get("steps") or v.steps

    return {v.name: (train_variant, (v, os.path.join(out, v.name, "train")), {"arch": arch, **settings})
            for v in sorted(variants, key=lambda v: -steps(v))}


def run(out: str, train_seed: int = 1, seeds: tuple[int, ...] = (1, 2), variants=VARIANTS, loras: Optional[dict] = None,
        arch: str = "sdxl", device: str = "cpu", precision: str = "fp32", base: Optional[str] = None) -> dict:
    """loras: {variant name: LoRA file} already trained (the tests share them with the stacking check).
    On the CPU the others train side by side (lanes.py), and the validate runs go two at a time."""
    from . import lanes

    loras = dict(loras or {})
    workers = None if device == "cpu" else 1
    loras.update(lanes.in_processes(train_jobs([v for v in variants if v.name not in loras], out, seed=train_seed, base=base, arch=arch,
                                               device=device, precision=precision), workers))
    results = lanes.in_threads({v.name: (validate, (v, loras[v.name], os.path.join(out, v.name), list(seeds), arch, base, device), {})
                                for v in variants}, workers)
    return {v.name: summary(results[v.name]) for v in variants}


def table(rows: dict) -> str:
    ids = list(next(iter(rows.values()))["measures"]) if rows else []
    head = "| LoRA | verdict | " + " | ".join(ids) + " |"
    lines = [head, "|" + "---|" * (len(ids) + 2)]
    for name, r in rows.items():
        cells = [f"{value:.3f} {status}" if value is not None else f"- {status}" for value, status in r["measures"].values()]
        lines.append(f"| {name} | {r['status']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
