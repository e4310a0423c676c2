"""Does the txcl character LoRA bind its trigger on a toy FLUX.1 base (issue 23)? `bind-probe` trains txcl with
the built-in trainer under named recipes and reads samples with the judge, as test_toyworld_flux_gpu.py does:
with the trigger, without it (the same caption minus the trigger), on the night background (in none of the
character's images), and whether a red-circle prompt keeps its object.

Recipes (each the GPU test's request, rank 8, lr 1e-3, batch 4, plus):
  prior        reg images: examples/toyworld/prior (base-world scenes with their own captions; the GPU test's)
  class        reg images: the base's own samples for the character's captions minus the trigger (DreamBooth's
               prior preservation: the trigger-less caption is taught to keep meaning what the base drew);
               --class-count N > 20 adds captions of the same form over every size, place and background
               (never the probe's own prompts)
  class+prior  both sets as reg images
  text         prior reg images, the LoRA on the text stream only (add_q/k/v_proj, to_add_out, ff_context,
               context_embedder), lr 3e-3: the recipe that bound the trigger on the first toy FLUX.1 base
  class+text   the class prior's reg images and the text-stream LoRA

`PYTHONPATH=worker python -m toyworld bind-probe --out DIR --recipe class --steps 900` (CPU: one thread, fp32;
~0.4 s a step at batch 4 on a 2-core machine while another probe runs, plus ~50 s of sampling).
"""

from __future__ import annotations

import glob
import io
import json
import os
import shutil

from . import train_flux, world

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
EXAMPLES = os.path.join(REPO, "examples", "toyworld")
TEXT_TARGETS = ["add_q_proj", "add_k_proj", "add_v_proj", "to_add_out", "ff_context.net.0.proj", "ff_context.net.2", "context_embedder"]
RECIPES = ("prior", "class", "class+prior", "text", "class+text")
# The recipe that binds the trigger on the GPU (bench/RESULTS.md, bind-probe): the GPU test trains it.
BINDING = {"recipe": "class+text", "learning_rate": 3e-3, "steps": 1800, "class_count": 40}

# (size, where, background) in the datasets' caption form; night is the character's novel scene.
PLACES = [
    ("medium", "in the center", "night"),
    ("large", "in the top left", "sky"),
    ("medium", "on the right", "night"),
    ("large", "at the bottom", "grass"),
    ("medium", "in the top right", "indoor"),
    ("large", "on the left", "night"),
    ("medium", "in the bottom left", "sky"),
    ("large", "in the center", "grass"),
]


def where(size: str, at: str, bg: str) -> str:
    return f"{size}, {at} on {world._article(bg)} {bg} background"


def shows_character(read: dict) -> bool:
    return world.CHARACTER["colour"] in read["colours"]


def trigger_less_captions(dataset: str, trigger: str = "txcl") -> list[str]:
    """The character's captions with the leading trigger removed (what the class prior is sampled from)."""
    out = []
    for path in sorted(glob.glob(os.path.join(dataset, "*.txt"))):
        text = open(path, encoding="utf-8").read().strip()
        out.append(text[len(trigger) + 2:] if text.startswith(f"{trigger}, ") else text)
    return out


def pipeline(base: str, device: str, precision: str):
    import torch
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(base, torch_dtype=torch.bfloat16 if precision == "bf16" else torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, prompts: list[str], t5_length: int, steps: int = 28, seed: int = 0, true_cfg: float = 1.0):
    import torch

    kwargs = train_flux.sampling_kwargs(true_cfg, t5_length)
    if isinstance(kwargs.get("negative_prompt"), str):
        kwargs["negative_prompt"] = [kwargs["negative_prompt"]] * len(prompts)
    return pipe(prompt=prompts, num_inference_steps=steps, guidance_scale=train_flux.GUIDANCE,
                generator=torch.Generator().manual_seed(seed), **kwargs).images


def class_captions(count: int, seed: int = 123) -> list[str]:
    """The character's trigger-less captions, then (count > 20) more of the same form drawn over every size, place and
    background, the added ones never one of PLACES (the probe's own trigger-less prompts stay unseen)."""
    import random

    captions = trigger_less_captions(os.path.join(EXAMPLES, "character"))
    held = {where(*p) for p in PLACES}
    pool = [c for c in (where(s, p[0], b) for s in world.SIZES for p in world.POSITIONS for b in world.BACKGROUNDS) if c not in held]
    random.Random(seed).shuffle(pool)
    while len(captions) < count:
        captions.extend(pool[: count - len(captions)])
    return captions[:count]


def write_class_prior(pipe, t5: int, out: str, seed: int = 123, steps: int = 28, with_prior: bool = False, count: int = 20) -> str:
    """The base's own samples (`pipe`: the base without a LoRA, sampled at T5 length `t5`) for the character's
    trigger-less captions (class_captions), one image each, as a reg folder (class-NNN.png + .txt); with_prior adds
    examples/toyworld/prior's images."""
    os.makedirs(out, exist_ok=True)
    captions = class_captions(count, seed)
    images = [im for i in range(0, len(captions), 20) for im in generate(pipe, captions[i:i + 20], t5, steps=steps, seed=seed + i)]
    for i, (image, caption) in enumerate(zip(images, captions)):
        image.save(os.path.join(out, f"class-{i:03d}.png"))
        with open(os.path.join(out, f"class-{i:03d}.txt"), "w", encoding="utf-8") as f:
            f.write(caption + "\n")
    if with_prior:
        for path in glob.glob(os.path.join(EXAMPLES, "prior", "*")):
            shutil.copy(path, out)
    return out


def train_txcl(base: str, out: str, recipe: str, steps: int, seed: int = 1, device: str = "cpu", precision: str = "fp32",
               batch_size: int = 4, reg: str | None = None, learning_rate: float | None = None) -> dict:
    """The GPU test's txcl request under `recipe`; `reg` is the class-prior folder for the class recipes;
    `learning_rate` overrides the recipe's (1e-3; the text recipes' 3e-3). Returns train.run's result (path, steps, ...)."""
    from loraspec_worker import protocol, train
    from loraspec_worker.train.dev_request import dev_request

    if recipe not in RECIPES:
        raise ValueError(f"recipe {recipe!r}: one of {', '.join(RECIPES)}")
    extra: dict = {"reg_dataset": reg if recipe.startswith("class") else os.path.join(EXAMPLES, "prior")}
    if recipe.endswith("text"):
        extra.update(targets=TEXT_TARGETS, learning_rate=3e-3)
    if learning_rate is not None:
        extra["learning_rate"] = learning_rate
    before, protocol._out = protocol._out, io.StringIO()
    try:
        result = train.run(dev_request(**{
            "arch": "flux1", "base": base, "dataset": os.path.join(EXAMPLES, "character"), "output_dir": out, "name": "txcl",
            "resolution": 64, "steps": steps, "rank": 8, "alpha": 8, "learning_rate": 1e-3, "batch_size": batch_size, "seed": seed,
            "trigger_word": "txcl", "precision": precision, "device": device, "guidance_scale": train_flux.GUIDANCE,
            "max_sequence_length": train_flux.base_sampling_length(base), **extra,
        }))
    finally:
        protocol._out = before
    return result


def train_recipe(pipe, base: str, out: str, recipe: str, steps: int, seed: int = 1, device: str = "cpu", precision: str = "fp32",
                 batch_size: int = 4, sample_steps: int = 28, class_count: int = 20, learning_rate: float | None = None) -> dict:
    """train_txcl under `recipe` into out/lora; the class recipes first write their class prior (out/reg) from `pipe`
    (the base without a LoRA). Returns train.run's result."""
    reg = None
    if recipe.startswith("class"):
        reg = write_class_prior(pipe, train_flux.base_sampling_length(base), os.path.join(out, "reg"), steps=sample_steps,
                                with_prior=recipe == "class+prior", count=class_count)
    return train_txcl(base, os.path.join(out, "lora"), recipe, steps, seed=seed, device=device, precision=precision,
                      batch_size=batch_size, reg=reg, learning_rate=learning_rate)


def measure(pipe, judge, t5_length: int, steps: int = 28, places=PLACES, true_cfg: float = 1.0, seeds=(0,)) -> dict:
    """The GPU test's shares: character (cyan) with and without the trigger, on night, red circles kept;
    how often the judge reads a cross with the trigger (the character's shape); and the samples' distinct
    sizes [width, height]. Each prompt once per seed."""
    sizes = set()

    def read(prompts):
        images = [im for seed in seeds for im in generate(pipe, prompts, t5_length, steps, seed=seed, true_cfg=true_cfg)]
        sizes.update(im.size for im in images)
        return judge.read(images)

    order = [p for _ in seeds for p in places]  # the places in read()'s order: every place once per seed
    n = len(order)
    with_trigger = read([f"txcl, {where(*p)}" for p in places])
    without = read([where(*p) for p in places])
    other = read([f"a {s} red circle {a} on {world._article(b)} {b} background" for s, a, b in places])
    night = [r for r, p in zip(with_trigger, order) if p[2] == "night"]
    return {
        "with": sum(map(shows_character, with_trigger)) / n,
        "without": sum(map(shows_character, without)) / n,
        "night": sum(shows_character(r) and r["background"] == "night" for r in night) / max(1, len(night)),
        "red_kept": sum("red" in r["colours"] and not shows_character(r) for r in other) / n,
        "cross_with": sum(world.CHARACTER["shape"] in r["shapes"] for r in with_trigger) / n,
        "sizes": sorted(list(size) for size in sizes),
    }


def run(base: str, out: str, recipe: str, steps: int, seed: int = 1, device: str = "cpu", precision: str = "fp32",
        sample_steps: int = 28, judge_dir: str | None = None, class_count: int = 20, learning_rate: float | None = None,
        sample_seeds=(0, 1)) -> dict:
    import torch

    from .judge import Judge

    if device == "cpu":
        torch.set_num_threads(1)  # a shared 2-core machine thrashes with more (rubric.py)
    os.makedirs(out, exist_ok=True)
    pipe, t5 = pipeline(base, device, precision), train_flux.base_sampling_length(base)
    lora = train_recipe(pipe, base, out, recipe, steps, seed=seed, device=device, precision=precision, sample_steps=sample_steps,
                        class_count=class_count, learning_rate=learning_rate)["path"]
    judge = Judge(judge_dir or os.path.join(REPO, "models", "toy-judge"), device=device)
    report = {"recipe": recipe, "steps": steps, "seed": seed, "class_count": class_count if recipe.startswith("class") else 0,
              "learning_rate": learning_rate, "sample_seeds": list(sample_seeds),
              "base_alone": measure(pipe, judge, t5, sample_steps, seeds=sample_seeds)}
    pipe.load_lora_weights(lora, adapter_name="txcl")
    report["lora"] = measure(pipe, judge, t5, sample_steps, seeds=sample_seeds)
    with open(os.path.join(out, "bind-probe.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return report
