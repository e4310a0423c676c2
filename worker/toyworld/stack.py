"""Issue 23's stacking check on the toy bases (SDXL; FLUX.1 with `arch`), measured by the judge.

  pair   the `txcl` character LoRA at 0.5 and the `txst` style LoRA (cel shading, world.SHADED) at
         0.3, the guide's example: each LoRA's effect is the share of samples the judge reads its
         concept in (character: cyan, by the colour-under-style head, which reads an object's colour
         under the style; style: the style head) minus the base model's share on the same prompts
         and seeds; stacked, each keeps `retention` = stacked effect / solo effect. The style's solo
         effect is also measured on the character's object named (a cyan cross, which the stack
         draws). The style LoRA is trained to convergence on a set holding the character's object
         shaded and baked for its weight (STYLE_*: x1.67 on SDXL; x4 on FLUX.1, where the set is half such crosses); a quick
         one only darkens whole objects
         (bench/RESULTS.md, "Why the style does not shade cyan", "Reading the character under the style").
  four   four LoRAs at 1.0 each (txcl, txst and the rubric's unbound and collapse LoRAs): the judge's
         accuracy on plain base-world prompts (colour, shape, background asked for) against the
         base model's; `degradation` is how much of it the stack loses.
Then `loraspec validate` on the txcl LoRA with the others in `validation.stack` (the stack check:
combined weight <= 1.0, adapter count and the embedding's retention): passes the pair's check,
fails the four's.

`--bake S` bakes a strength into the style LoRA (its delta x S, as `loraspec merge X:S` writes it on a
real base; Kohya's `network_multiplier` trains it): weight 0.3 then acts as 0.3 x S did
(bench/RESULTS.md, "A style baked for its weight"); the recipe's is STYLE_BAKE (1.67 on SDXL), `--bake 1` leaves it.

`PYTHONPATH=worker python -m toyworld stack --out DIR` trains the LoRAs and prints the figures;
worker/tests/test_toyworld_rubric.py asserts them with the rubric's LoRAs.
"""

from __future__ import annotations

import os
from typing import Optional

from . import world
from .rubric import BASE, BASES, EXAMPLES, FLUX_BASE, JUDGE, RENDER, THREADS, VARIANTS, run_validate, toy_request, train_variant

PAIR = {"txcl": 0.5, "txst": 0.3}
# The rubric's LoRAs by role: the good one is the txcl character.
RUBRIC_NAMES = {"txcl": "good", "unbound": "unbound", "collapse": "collapse"}
FOUR = {"txcl": 1.0, "txst": 1.0, "unbound": 1.0, "collapse": 1.0}
# The style LoRA (bench/RESULTS.md, "Reading the character under the style"): the character's recipe
# (rank 8, prior reg images) trained to convergence on 60 images of the style, 10 of them the character's
# object shaded (the `style-character` concept: the style learns the object it shades in the stack), then
# baked for its weight (its delta x S, what `loraspec merge X:S` writes): at 0.3 it acts as 0.3 x S. A
# 300-step lr 3e-3 LoRA on 20 images only darkened objects, and unbaked the converged one showed in 2-4 of 8
# at 0.3 ("Why the style does not shade cyan", "A style baked for its weight").
# On FLUX.1 the set is half shaded crosses (style-character-half, 30 of 60): on GPU-trained (bf16) LoRAs the 10-of-60
# set met the stack's bar in 6 of 8 rows at its best bake and its stacked style took the character's cyan (0.76); with
# 30 of 60 at x4, 6 of 8, both retentions higher on average (0.83 / 0.85), and the GPU test passed in 4 of 4 fixture
# runs where the 10-of-60 recipe passed 2 of 4 (bench/RESULTS.md, "More shaded crosses in the FLUX.1 style's set").
STYLE_CONCEPT = {"sdxl": "style-character", "flux1": "style-character-half"}
STYLE_IMAGES = 60
STYLE_STEPS = 1500
STYLE_LR = 1e-3
# Per toy base, measured at training seeds 1-3 (SDXL) and 1-2 (FLUX.1), sampling seeds 0-3 and 4-7: on SDXL x1.67
# (x2 took the character's colour in half the stacked samples at training seed 3: 0.53 on seeds 4-7); the FLUX.1
# style is weaker per unit of weight (x1.67-x2 do not show at 0.3 there) and x3.33 did not shade the character's
# cross at training seed 2 (2 of 32 named; retention 0.40), x4.5 did (CPU, fp32, the 10-of-60 set). The half-crosses
# set's bake, x4, was chosen on the GPU (bake_sweep: x3.5-x5 on bf16 LoRAs, training seeds 1-2, two trainings each).
STYLE_BAKE = {"sdxl": 1.67, "flux1": 4}
# The character LoRA in the stack: the rubric's good recipe on the UNet's cross-attention keys and values only
# (Custom Diffusion's set; a contract names it `network.modules: [attn2.to_k, attn2.to_v]`), where the prompt's
# tokens enter the image: it shares no module with the style's self-attention and keeps its cyan under the
# baked style at training seeds 1-3, where on all attention it kept 0.5 at seed 3 ("Reading the character
# under the style"). FLUX.1's txcl is bind_probe.BINDING's, on the text stream only.
CHARACTER_TARGETS = {"sdxl": ["attn2.to_k", "attn2.to_v"]}
# Prompts with both triggers, the style's first (as in its captions), then the character's caption form.
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


def character_object_prompts() -> list[str]:
    """The stack's places with the character's object named in the style's caption form ("txst, a
    medium cyan cross ..."): the base draws a cyan cross, so the style alone is measured on the object
    it has to shade in the stack (on prompts(), the base, not knowing txcl, draws other objects)."""
    ch = world.CHARACTER
    return [f"txst, a {size} {ch['colour']} {ch['shape']} {where} on {world._article(bg)} {bg} background" for size, where, bg in PLACES]


def plain_prompts(count: int = 8) -> list[tuple[str, dict]]:
    """Base-world prompts (no trigger) with the truth they ask for: what a stack must not break."""
    from .train_base import eval_prompts

    return eval_prompts(count, seed=910_000_000)


def bake(path: str, factor: float) -> str:
    """A copy of the LoRA with its delta scaled by `factor` (every lora_B x factor), beside it as
    NAME-xFACTOR.safetensors. On a real base `loraspec merge X:f` writes the same delta (the CLI refuses
    the toy's shapes; `merge X:f/2 X:f/2 --method cat` on this style LoRA padded to SDXL's shapes gave it
    to 4e-8 relative)."""
    from .frame_probe import scaled

    return scaled(path, factor)


def train_style(out: str, seed: int = 1, steps: int = STYLE_STEPS, dataset: str | None = None,
                learning_rate: float = STYLE_LR, targets: list[str] | None = None, base: str | None = None,
                bake_factor: float | None = None, arch: str = "sdxl", device: str = "cpu", precision: str = "fp32",
                concept: str | None = None) -> str:
    """The style LoRA, baked for its weight (`bake`: the arch's STYLE_BAKE unless `bake_factor` says; 1 leaves
    it as trained). Its dataset is the `concept` set (the arch's STYLE_CONCEPT unless said), written under `out` (the
    generator's, the same bytes every time) unless `dataset` names another; `learning_rate`, `targets` (the request's module patterns, e.g.
    `up_blocks.*.attentions.*.transformer_blocks.*.attn1.to_q`) and `base` vary the recipe for experiments;
    `arch` flux1 trains it on the toy FLUX.1 base (toy_request's flux1 form: fp32 on the CPU, the base's
    guidance and T5 length)."""
    from loraspec_worker import train

    from .concepts import write_concept

    if dataset is None:
        concept = concept or STYLE_CONCEPT[arch]
        dataset = os.path.join(out, "dataset", concept)
        write_concept(dataset, concept, STYLE_IMAGES)
    path = train.run(toy_request(
        dataset, out, "txst", steps, seed, base, arch, device, precision,
        learning_rate=learning_rate, trigger_word=world.STYLE["trigger"], reg_dataset=os.path.join(EXAMPLES, "prior"),
        targets=targets,
    ))["path"]
    factor = STYLE_BAKE[arch] if bake_factor is None else bake_factor
    return bake(path, factor) if factor != 1 else path


def train_all(out: str, seed: int = 1, targets: dict | None = None, style: dict | None = None) -> dict:
    """The four LoRAs: txst here, the others with the rubric's recipes, txcl on CHARACTER_TARGETS. `targets`
    ({"txcl" | "txst": [pattern, ...]}) trains those two on other modules (bench/RESULTS.md, "Stacking on
    disjoint modules"); `style` overrides train_style's steps, dataset, learning_rate, bake_factor."""
    targets = {"txcl": CHARACTER_TARGETS["sdxl"], **(targets or {})}
    variants = {v.name: v for v in VARIANTS}
    loras = {name: train_variant(variants[v], os.path.join(out, name), seed=seed, targets=targets.get(name)) for name, v in RUBRIC_NAMES.items()}
    loras["txst"] = train_style(os.path.join(out, "txst"), seed=seed, targets=targets.get("txst"), **(style or {}))
    return loras


def load(loras: dict, arch: str = "sdxl", device: str = "cpu", precision: str = "fp32"):
    """The toy base of `arch` with each LoRA loaded as its own adapter."""
    import torch

    if arch == "flux1":
        from .bind_probe import pipeline

        pipe = pipeline(FLUX_BASE, device, precision)
    else:
        from diffusers import StableDiffusionXLPipeline

        pipe = StableDiffusionXLPipeline.from_pretrained(BASE, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
    for name, path in loras.items():
        pipe.load_lora_weights(path, adapter_name=name)
    return pipe


def _sample(pipe, prompt_list, weights: dict, seeds, steps: int, arch: str = "sdxl"):
    import torch

    if weights:
        pipe.enable_lora()
        pipe.set_adapters(list(weights), adapter_weights=list(weights.values()))
    else:
        pipe.disable_lora()
    images = []
    for seed in seeds:
        if arch == "flux1":
            from .bind_probe import generate
            from .train_flux import base_sampling_length

            images += generate(pipe, prompt_list, base_sampling_length(FLUX_BASE), steps=steps, seed=seed)
        else:
            images += pipe(prompt=prompt_list, num_inference_steps=steps, guidance_scale=RENDER["sdxl"][1], generator=torch.Generator().manual_seed(seed)).images
    return images


def character_colours(judge) -> str:
    """The judge's read of an object's colour in a stack: the colour-under-style head where the judge has
    it (judge.py, colour_head.py). A style may restyle an object but not recolour it, and the `colours` head,
    never shown the style, reads a shaded cyan cross as another colour in 12 of 48 after the toy SDXL VAE."""
    return "colours_any" if judge.has_colour_any else "colours"


def accuracy(pipe, judge, weights: dict, seeds, steps: int, arch: str = "sdxl") -> dict:
    """Share of the plain prompts' colour, shape and background the judge reads right, with `weights` applied."""
    asked = plain_prompts()
    reads = judge.read(_sample(pipe, [p for p, _ in asked], weights, seeds, steps, arch))
    truths = [t for _ in seeds for _, t in asked]
    colours = character_colours(judge)
    return {
        "colour": sum(t["colours"][0] in r[colours] for t, r in zip(truths, reads)) / len(reads),
        "shape": sum(t["shapes"][0] in r["shapes"] for t, r in zip(truths, reads)) / len(reads),
        "background": sum(t["background"] == r["background"] for t, r in zip(truths, reads)) / len(reads),
    }


def degradation(loras: dict, arch: str = "sdxl", seeds=(0,), steps: Optional[int] = None, device: str = "cpu",
                precision: str = "fp32") -> dict:
    """What every LoRA of `loras` at 1.0 at once breaks of what the base draws (the stack check's "four at 1.0"):
    the plain prompts' accuracy for the base and the stack, and base minus stack."""
    from .judge import Judge

    steps = steps or RENDER[arch][0]
    pipe, judge = load(loras, arch, device, precision), Judge(JUDGE)
    acc, lost = _accuracy_lost(pipe, judge, "all at 1.0", {n: 1.0 for n in loras}, seeds, steps, arch)
    return {"seeds": list(seeds), "accuracy": acc, "degradation": lost}


def _accuracy_lost(pipe, judge, label: str, weights: dict, seeds, steps: int, arch: str) -> tuple[dict, dict]:
    """The plain prompts' accuracy for the base and with `weights` applied (as `label`), and base minus that."""
    acc = {name: accuracy(pipe, judge, w, seeds, steps, arch) for name, w in (("base", {}), (label, weights))}
    return acc, {k: acc["base"][k] - acc[label][k] for k in acc["base"]}


def measure(loras: dict, seeds=(0,), steps: Optional[int] = None, arch: str = "sdxl", device: str = "cpu",
            precision: str = "fp32") -> dict:
    """The pair's shares, effects and retention, and the four's degradation (see the module doc) on the toy
    base of `arch` (flux1: rendered as bind_probe does, `steps` default 28 at the base's sampling length).
    The four's degradation is measured only when `loras` holds all four."""
    from .judge import Judge

    steps = steps or RENDER[arch][0]
    pipe, judge = load(loras, arch, device, precision), Judge(JUDGE)

    colours = character_colours(judge)

    def concept_shares(reads) -> dict:
        n = len(reads)
        return {"txcl": sum(world.CHARACTER["colour"] in r[colours] for r in reads) / n,
                "txst": sum(r["style"] == world.STYLE["fill"] for r in reads) / n}

    sets = {"base": {}, **{f"{n} alone": {n: w} for n, w in PAIR.items()}, "stack": PAIR}
    shares = {label: concept_shares(judge.read(_sample(pipe, prompts(), w, seeds, steps, arch))) for label, w in sets.items()}
    for label, w in (("base, the character's object named", {}), ("txst alone, the character's object named", {"txst": PAIR["txst"]})):
        shares[label] = concept_shares(judge.read(_sample(pipe, character_object_prompts(), w, seeds, steps, arch)))
    pair = {}
    for name in PAIR:
        solo = shares[f"{name} alone"][name] - shares["base"][name]
        stacked = shares["stack"][name] - shares["base"][name]
        pair[name] = {"solo_effect": solo, "stacked_effect": stacked, "retention": stacked / solo if solo > 0 else None}
    # the style's solo effect on the object the stack draws (see character_object_prompts)
    pair["txst"]["solo_effect_on_character_object"] = (
        shares["txst alone, the character's object named"]["txst"] - shares["base, the character's object named"]["txst"])
    result = {"arch": arch, "seeds": list(seeds), "character_read_by": colours, "shares": shares, "pair": pair}
    if all(n in loras for n in FOUR):
        acc, lost = _accuracy_lost(pipe, judge, "four at 1.0", FOUR, seeds, steps, arch)
        result.update(accuracy=acc, degradation=lost)
    return result


def contract(others: dict, loras: dict, self_weight: float, seeds: list[int], arch: str = "sdxl") -> dict:
    """The txcl contract with `others` ({name: weight}) in validation.stack; a small rubric (the
    stack check samples its trigger prompts; they name txst when it is in the stack)."""
    lead = "txst, " if "txst" in others else ""
    return {
        "version": 1, "name": "txcl-stack", "base": {"model": {"sdxl": "sdxl", "flux1": "flux1-dev"}[arch], "path": BASES[arch]},
        "trainer": {"name": "diffusers"}, "hardware": {"kind": "local"}, "target": "character",
        "dataset": {"path": os.path.join(EXAMPLES, "character"), "resolution": 64},
        "trigger": {"word": "txcl"},
        "validation": {
            "seeds": seeds, "pose_variations": 2, "weight_sweep": [1.0],
            "trigger_prompts": [f"{lead}{{trigger}}, {size}, {where} on {world._article(bg)} {bg} background" for size, where, bg in PLACES[:2]],
            "variation_prompts": ["{trigger}, medium, in the center on a sky background", "{trigger}, large, on the left on a grass background"],
            "novel_scenes": ["{trigger}, large, in the center on a night background"],
            "self_weight": self_weight,
            "stack": [{"lora": loras[n], "weight": w} for n, w in others.items()],
        },
    }


def validate_stack(weights: dict, loras: dict, out: str, seeds=(1,), arch: str = "sdxl", device: str = "cpu",
                   render_steps: Optional[int] = None) -> dict:
    """`loraspec validate` on txcl with the other adapters of `weights` stacked: the stack check's
    verdict and measures, and the CLI's exit code."""
    others = {n: w for n, w in weights.items() if n != "txcl"}
    result = run_validate(contract(others, loras, weights["txcl"], list(seeds), arch), loras["txcl"], out, arch,
                          device=device, render_steps=render_steps)
    stack = result["verdicts"].get("stack") or {}
    return {"exit_code": result["exit_code"], "status": stack.get("status"),
            "measures": [(m["id"], m.get("value"), m["status"]) for m in stack.get("measures", [])]}


def run(out: str, seed: int = 1, sample_seeds=(0, 1), loras: dict | None = None, targets: dict | None = None,
        style: dict | None = None) -> dict:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        loras = loras or train_all(out, seed=seed, targets=targets, style=style)
        result = measure(loras, seeds=sample_seeds)
        result["validate"] = {"pair": validate_stack(PAIR, loras, os.path.join(out, "validate-pair")),
                              "four": validate_stack(FOUR, loras, os.path.join(out, "validate-four"))}
        return result
    finally:
        torch.set_num_threads(threads)
