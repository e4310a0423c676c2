"""`PYTHONPATH=worker python -m toyworld <command>`: the toy world's tools.

  train-base      train the judge (optional) and the toy SDXL base (see train_base.py), or with
                  --arch flux1 the toy FLUX.1 base (see train_flux.py)
  flux-throughput images/s of the toy FLUX.1 base's transformer phase per speed config (see flux_speed.py)
  make-concepts   write the concept LoRA datasets (txcl character, txst style, txpd product)
  judge           read images with the judge: labels per image as JSON lines
  rubric          train the four rubric LoRAs (good, unbound, overfit, collapse) and validate each
  stack           train txcl, txst and two rubric LoRAs; judge txcl + txst at 0.5 + 0.3 and all four at 1.0 (see stack.py)
  train-style-head  train the judge's style head (txst's cel shading) on the frozen judge (see style_head.py)
  train-colour-head train the judge's colour-under-style head on the frozen judge (see colour_head.py)
  style-probe     the toy VAE's round trip for candidate style concepts (see style_probe.py)
  frame-probe     a style at the image's edge (frame, vignette): VAE separability, LoRAs solo and stacked with txcl (see frame_probe.py)
  frame-vae       a copy of the toy SDXL base whose VAE draws a frame locally (see frame_probe.teach_vae)
  split-probe     does a txst LoRA draw the cel split or only darken? the style head on solid shade colours (see split_probe.py)
  shape-probe     what limits a toy FLUX.1 base's shapes: VAE round trip, samples by size, text probe, loss gaps (see shape_probe.py)
  shape-trace     where the toy FLUX.1 transformer loses the shape word: attention mass per key group, T5 carriers, hidden-state probes (see shape_trace.py)
  bind-probe      does txcl bind its trigger on a toy FLUX.1 base? one recipe (prior, class, class+prior, text, class+text) trained and judged (see bind_probe.py)
  aspect          train txcl bucketed and square on the portrait-and-landscape set; judge samples at 64x128 and 128x64 (see aspect_run.py)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .flux_speed import COMPILE_MODES, LR_RULES

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_BASE = os.path.join(REPO, "models", "toy-sdxl")
DEFAULT_BASES = {"sdxl": DEFAULT_BASE, "flux1": os.path.join(REPO, "models", "toy-flux1")}
DEFAULT_JUDGE = os.path.join(REPO, "models", "toy-judge")


def add_train_base(sub) -> None:
    """train-base: the toy SDXL base (with the judge) or, with --arch flux1, the toy FLUX.1 base."""
    tb = sub.add_parser("train-base", help="train the judge and the toy SDXL base, or the toy FLUX.1 base")
    tb.add_argument("--arch", default="sdxl", choices=sorted(DEFAULT_BASES))
    tb.add_argument("--out", default=None, help="default models/toy-sdxl or models/toy-flux1")
    tb.add_argument("--judge-out", default=DEFAULT_JUDGE)
    tb.add_argument("--device", default=None)
    tb.add_argument("--workers", type=int, default=0)
    tb.add_argument("--seed", type=int, default=0)
    tb.add_argument("--judge-steps", type=int, default=3000, help="0 keeps the judge in --judge-out (flux1 always keeps it)")
    tb.add_argument("--judge-images", type=int, default=60000)
    tb.add_argument("--judge-eval", type=int, default=5000)
    tb.add_argument("--images", type=int, default=60000)
    tb.add_argument("--vae-steps", type=int, default=3000)
    tb.add_argument("--vae-seconds", type=float, default=60)
    tb.add_argument("--vae-codec-images", type=int, default=20000,
                    help="flux1: extra scenes with every fill the VAE alone trains on (a general codec; the style's stripes survive it)")
    tb.add_argument("--unet-steps", type=int, default=100000)
    tb.add_argument("--unet-seconds", type=float, default=240)
    tb.add_argument("--transformer-steps", type=int, default=100000, help="flux1: the transformer + text encoders phase")
    tb.add_argument("--transformer-seconds", type=float, default=150)
    tb.add_argument("--lr", type=float, default=4e-4, help="flux1: the transformer phase's learning rate")
    tb.add_argument("--t5-lengths", type=_ints, default="512,128", help="flux1: T5 padding lengths the training steps cycle through")
    tb.add_argument("--weighting", default="none", choices=["none", "logit_normal", "shift", "sigmoid"],
                    help="flux1: sigma sampling (the trainer's timestep_sampling; none is uniform)")
    tb.add_argument("--flux-heads", type=int, default=6, help="flux1: attention heads of 32 (the transformer's width / 32)")
    tb.add_argument("--flux-double", type=int, default=2, help="flux1: double-stream blocks")
    tb.add_argument("--flux-single", type=int, default=4, help="flux1: single-stream blocks")
    tb.add_argument("--object-weight", type=float, default=0.0,
                    help="flux1: the loss on object pixels weighs 1 + this (0: the plain loss)")
    tb.add_argument("--outline-weight", type=float, default=0.0,
                    help="flux1: this much more loss weight on the band where the object's shape differs from the mean "
                         "shape, and on its outline (toyworld/outline.py; adds to --object-weight; 0: off)")
    tb.add_argument("--vae-downscale", type=int, default=4, choices=[4, 2],
                    help="flux1: the VAE's downscale (4: 8x8 image tokens of 8x8 px; 2: 16x16 tokens of 4x4 px)")
    tb.add_argument("--batch", type=int, default=256)
    tb.add_argument("--lr-rule", default="fixed", choices=LR_RULES,
                    help="flux1: fixed takes --lr as given; sqrt scales it by sqrt(batch / 256) (see flux_speed.py)")
    tb.add_argument("--compile", default="off", choices=COMPILE_MODES,
                    help="flux1: torch.compile the transformer and text encoders (blocks: regional; graphs: with CUDA graphs)")
    tb.add_argument("--fused-adam", action="store_true", help="flux1: fused AdamW (one kernel per step)")
    tb.add_argument("--no-host-sync", action="store_true",
                    help="flux1: batch draws on the GPU (another random stream) and the loss read at log time only")
    tb.add_argument("--eval", type=int, default=200, help="base samples the judge reads after training")
    tb.add_argument("--grid", default=None, help="save the first 50 eval samples as a PNG grid")


def add_flux_throughput(sub) -> None:
    """flux-throughput: the toy FLUX.1 transformer phase's speed configs."""
    ft = sub.add_parser("flux-throughput", help="images/s of the toy FLUX.1 transformer phase per speed config (see flux_speed.py)")
    ft.add_argument("--out", required=True, help="throughput.jsonl goes here")
    ft.add_argument("--configs", default=None, help="comma-separated, tokens joined by + (e.g. baseline,fast+compile+b1024)")
    ft.add_argument("--steps", type=int, default=48, help="timed steps per config (whole T5-length cycles)")
    ft.add_argument("--warmup", type=int, default=8, help="untimed steps first (compiles happen here)")
    ft.add_argument("--seconds", type=float, default=90, help="each config's limit, warm-up included")
    ft.add_argument("--images", type=int, default=2048, help="synthetic images to draw batches from (each config tokenizes their captions)")
    ft.add_argument("--t5-lengths", type=_ints, default="512,128,64,64")
    ft.add_argument("--device", default=None)


def add_datasets_and_judge(sub) -> None:
    """make-concepts and judge."""
    mc = sub.add_parser("make-concepts", help="write the concept datasets")
    mc.add_argument("--out", required=True)
    mc.add_argument("--concept", action="append", default=None, help="character | style | style-character[-third|-half] | product | character-notrigger | character-onebg | character-collapse | character-aspect | prior (repeatable)")
    mc.add_argument("--count", type=int, default=20)
    mc.add_argument("--captions", default="natural", choices=["natural", "tags"])

    jd = sub.add_parser("judge", help="read images with the judge")
    jd.add_argument("images", nargs="+")
    jd.add_argument("--judge", default=DEFAULT_JUDGE)


def add_lora_runs(sub) -> None:
    """rubric and stack: LoRAs trained on a toy base and judged."""
    rb = sub.add_parser("rubric", help="train the four rubric LoRAs and run loraspec validate on each (see rubric.py)")
    rb.add_argument("--out", required=True)
    rb.add_argument("--train-seed", type=int, default=1)
    rb.add_argument("--seeds", type=_ints, default="1,2", help="validation seeds, comma-separated")
    rb.add_argument("--variant", action="append", default=None, help="good | unbound | overfit | collapse (repeatable; default all)")
    rb.add_argument("--arch", default="sdxl", choices=sorted(DEFAULT_BASES), help="the toy base: sdxl (models/toy-sdxl) or flux1 (models/toy-flux1)")
    rb.add_argument("--device", default="cpu")
    rb.add_argument("--precision", default=None, help="default bf16 on CUDA, fp32 on the CPU")

    sk = sub.add_parser("stack", help="train txcl, txst and two rubric LoRAs; judge the pair at 0.5 + 0.3 and all four at 1.0 (see stack.py)")
    sk.add_argument("--out", required=True)
    sk.add_argument("--train-seed", type=int, default=1)
    sk.add_argument("--sample-seeds", type=_ints, default="0,1", help="sampling seeds, comma-separated")
    sk.add_argument("--targets", action="append", default=[], metavar="NAME=PATTERN,...",
                    help="train txcl or txst on these module patterns (the request's targets; repeatable)")
    sk.add_argument("--style-dataset", default=None, help="the style LoRA's dataset (default: the arch's stack.STYLE_CONCEPT, 60 images, written under --out)")
    sk.add_argument("--style-steps", type=int, default=None)
    sk.add_argument("--style-lr", type=float, default=None)
    sk.add_argument("--bake", type=float, default=None, metavar="S",
                    help="bake S into the style LoRA (its delta x S, as `loraspec merge X:S` writes it on a real base; default 2, 1 leaves it as trained)")


def add_judge_heads(sub) -> None:
    """train-style-head and train-colour-head: the judge's heads."""
    sh = sub.add_parser("train-style-head", help="train the judge's style head (see style_head.py)")
    sh.add_argument("--judge", default=DEFAULT_JUDGE, help="the judge folder, rewritten in place")
    sh.add_argument("--base", default=DEFAULT_BASE, help="the base whose VAE the round trip uses")
    sh.add_argument("--scenes", type=int, default=10_000)
    sh.add_argument("--epochs", type=int, default=15)
    sh.add_argument("--held-out", type=int, default=1000)

    ch = sub.add_parser("train-colour-head", help="train the judge's colour-under-style head on the frozen judge (see colour_head.py)")
    ch.add_argument("--judge", default=DEFAULT_JUDGE, help="the judge folder, rewritten in place")
    ch.add_argument("--base", action="append", default=None, help="a base whose VAE's round trip it learns (repeatable; default both toy bases)")
    ch.add_argument("--scenes", type=int, default=8_000)
    ch.add_argument("--epochs", type=int, default=30)
    ch.add_argument("--held-out", type=int, default=1000)


def add_sdxl_probes(sub) -> None:
    """style-probe, frame-probe, frame-vae and split-probe: probes on the toy SDXL base."""
    sp = sub.add_parser("style-probe", help="the toy VAE's round trip for candidate style concepts (see style_probe.py)")
    sp.add_argument("--base", default=DEFAULT_BASE)
    sp.add_argument("--judge", default=DEFAULT_JUDGE)
    sp.add_argument("--count", type=int, default=48)

    fr = sub.add_parser("frame-probe", help="a style at the image's edge, solo and stacked with txcl (see frame_probe.py)")
    fr.add_argument("--out", required=True)
    fr.add_argument("--style", action="append", default=None, help="frame | vignette (repeatable; default both)")
    fr.add_argument("--recipe", action="append", default=None, help="'20 img' | '60 img' (repeatable; default both)")
    fr.add_argument("--sample-seeds", type=_ints, default="0,1", help="sampling seed sets, one seed each, comma-separated")
    fr.add_argument("--scale", action="append", type=float, default=[], help="also measure each LoRA with its lora_B scaled by this (repeatable)")
    fr.add_argument("--base", default=None, help="another toy SDXL folder (e.g. frame-vae's); default models/toy-sdxl")

    fv = sub.add_parser("frame-vae", help="a copy of the toy SDXL base whose VAE draws a frame locally (see frame_probe.teach_vae)")
    fv.add_argument("--out", required=True)
    fv.add_argument("--base", default=DEFAULT_BASE)
    fv.add_argument("--steps", type=int, default=200)

    xp = sub.add_parser("split-probe", help="does a txst LoRA draw the cel split or only darken the object (see split_probe.py)")
    xp.add_argument("--base", default=DEFAULT_BASE)
    xp.add_argument("--judge", default=DEFAULT_JUDGE)
    xp.add_argument("--lora", default=None, help="a txst LoRA file (without it: the style head on solid shade colours only)")
    xp.add_argument("--colours", default="cyan,red,blue,yellow")
    xp.add_argument("--seeds", type=_ints, default="0,1")


def add_flux_probes(sub) -> None:
    """shape-probe, shape-trace and bind-probe: probes on the toy FLUX.1 base."""
    fp = sub.add_parser("shape-probe", help="what limits a toy FLUX.1 base's shapes (see shape_probe.py)")
    fp.add_argument("--base", default=DEFAULT_BASES["flux1"])
    fp.add_argument("--judge", default=DEFAULT_JUDGE)
    fp.add_argument("--parts", default="vae,text,loss_gap,samples")
    fp.add_argument("--samples", type=int, default=48)
    fp.add_argument("--t5-length", type=int, default=None, help="T5 padding length of the loss gaps and samples (default: the base's, from its toyworld.json)")

    tr = sub.add_parser("shape-trace", help="where the toy FLUX.1 transformer loses the shape word (see shape_trace.py)")
    tr.add_argument("--base", default=DEFAULT_BASES["flux1"])
    tr.add_argument("--parts", default="attention,carriers,hidden")
    tr.add_argument("--count", type=int, default=800, help="scenes for the probes (a quarter held out)")
    tr.add_argument("--attention-count", type=int, default=64, help="scenes for the attention mass")
    tr.add_argument("--t5-length", type=int, default=None, help="T5 padding length of the hidden-state probes (default: the base's, from its toyworld.json)")

    bp = sub.add_parser("bind-probe", help="train txcl on a toy FLUX.1 base under one recipe; judge it with and without the trigger (see bind_probe.py)")
    bp.add_argument("--out", required=True)
    bp.add_argument("--base", default=DEFAULT_BASES["flux1"])
    bp.add_argument("--recipe", default="class", choices=["prior", "class", "class+prior", "text", "class+text"])
    bp.add_argument("--class-count", type=int, default=20, help="class-prior images (20: the character's captions minus the trigger)")
    bp.add_argument("--steps", type=int, default=900)
    bp.add_argument("--lr", type=float, default=None, help="the LoRA's learning rate (default: the recipe's)")
    bp.add_argument("--train-seed", type=int, default=1)
    bp.add_argument("--sample-steps", type=int, default=28)
    bp.add_argument("--sample-seeds", type=_ints, default="0,1", help="sampling seeds, comma-separated (each prompt once per seed)")
    bp.add_argument("--device", default="cpu")
    bp.add_argument("--precision", default=None, help="default bf16 on CUDA, fp32 on the CPU")


def add_aspect(sub) -> None:
    """aspect: txcl bucketed vs square on portraits and landscapes."""
    ak = sub.add_parser("aspect", help="txcl bucketed vs square on portraits and landscapes, judged at 64x128 and 128x64 (see aspect_run.py)")
    ak.add_argument("--out", required=True)
    ak.add_argument("--steps", type=int, default=300)
    ak.add_argument("--train-seed", type=int, default=1)
    ak.add_argument("--sample-seed", type=int, default=0)
    ak.add_argument("--variant", action="append", default=None, help="bucketed | square (repeatable; default both)")
    ak.add_argument("--reuse", action="store_true", help="sample the LoRAs already trained in --out instead of training them again")


# The subcommands' parsers in `python -m toyworld --help`'s order (subparsers list in the order added).
PARSER_GROUPS = (add_train_base, add_flux_throughput, add_datasets_and_judge, add_lora_runs, add_judge_heads, add_sdxl_probes,
                 add_flux_probes, add_aspect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="PYTHONPATH=worker python -m toyworld")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSER_GROUPS:
        add(sub)
    return parser


def _ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of integers (seeds, T5 lengths): the `type` of those flags, so every
    command reads them parsed (argparse applies it to a string default too)."""
    return tuple(int(s) for s in text.split(","))


def _precision(args) -> str:
    """--precision, else bf16 on CUDA and fp32 on the CPU."""
    return args.precision or ("bf16" if args.device.startswith("cuda") else "fp32")


def _rubric_threads() -> None:
    """The CPU probes' thread count (rubric.THREADS)."""
    import torch

    from .rubric import THREADS

    torch.set_num_threads(THREADS)


def run_train_base(args, parser) -> None:
    from .train_base import run

    args.out = args.out or DEFAULT_BASES[args.arch]
    report = run(args)
    print(json.dumps(report, indent=2))


def run_flux_throughput(args, parser) -> None:
    from . import flux_speed

    flux_speed.probe((args.configs or flux_speed.DEFAULT_CONFIGS).split(","), args.out, steps=args.steps, warmup=args.warmup,
                     images=args.images, seconds=args.seconds, t5_lengths=args.t5_lengths,
                     device=args.device, log=lambda m: print(m, flush=True))


def run_make_concepts(args, parser) -> None:
    from .concepts import write_concepts

    print(json.dumps(write_concepts(args.out, args.concept or ["character", "style", "product"], count=args.count, captions=args.captions), indent=2))


def run_judge(args, parser) -> None:
    from .judge import Judge

    judge = Judge(args.judge)
    for path, read in zip(args.images, judge.read(args.images)):
        print(json.dumps({"path": path, **read}))


def run_rubric(args, parser) -> None:
    from . import rubric

    chosen = [v for v in rubric.VARIANTS if not args.variant or v.name in args.variant]
    rows = rubric.run(args.out, train_seed=args.train_seed, seeds=args.seeds, variants=chosen,
                      arch=args.arch, device=args.device, precision=_precision(args))
    print(json.dumps(rows))
    print(rubric.table(rows))


def run_stack(args, parser) -> None:
    from . import stack

    seeds = args.sample_seeds
    bad = [t for t in args.targets if t.split("=", 1)[0] not in stack.FOUR or "=" not in t]
    if bad:
        parser.error(f"--targets {bad[0]}: NAME=PATTERN,... with NAME one of {', '.join(stack.FOUR)}")
    targets = {name: patterns.split(",") for name, patterns in (t.split("=", 1) for t in args.targets)}
    style = {k: v for k, v in (("dataset", args.style_dataset), ("steps", args.style_steps), ("learning_rate", args.style_lr), ("bake_factor", args.bake)) if v is not None}
    print(json.dumps(stack.run(args.out, seed=args.train_seed, sample_seeds=seeds, targets=targets, style=style), indent=2))


def run_train_style_head(args, parser) -> None:
    from . import style_head

    print(json.dumps(style_head.run(args.judge, args.base, count=args.scenes, epochs=args.epochs, held_out=args.held_out), indent=2))


def run_train_colour_head(args, parser) -> None:
    from . import colour_head

    _rubric_threads()
    bases = args.base or [DEFAULT_BASES["sdxl"], DEFAULT_BASES["flux1"]]
    print(json.dumps(colour_head.run(args.judge, bases, count=args.scenes, epochs=args.epochs, held_out=args.held_out), indent=2))


def run_style_probe(args, parser) -> None:
    from . import style_probe

    _rubric_threads()
    rows = style_probe.run(args.base, args.judge, count=args.count)
    print(json.dumps(rows))
    print(style_probe.table(rows))


def run_frame_probe(args, parser) -> None:
    from . import frame_probe

    _rubric_threads()
    frame_probe.run(args.out, styles=args.style or tuple(frame_probe.STYLES), recipes=args.recipe or tuple(frame_probe.RECIPES),
                    sample_seeds=tuple((s,) for s in args.sample_seeds), scales=tuple(args.scale), base=args.base)


def run_frame_vae(args, parser) -> None:
    from . import frame_probe

    _rubric_threads()
    print(json.dumps(frame_probe.teach_vae(args.base, args.out, steps=args.steps)))


def run_split_probe(args, parser) -> None:
    from . import split_probe

    _rubric_threads()
    split_probe.run(args.base, args.judge, lora=args.lora, colours=args.colours.split(","), seeds=args.seeds)


def run_shape_probe(args, parser) -> None:
    from . import shape_probe

    print(json.dumps(shape_probe.run(args.base, args.judge, parts=args.parts.split(","), samples=args.samples,
                                     t5_length=args.t5_length), indent=2))


def run_shape_trace(args, parser) -> None:
    from . import shape_trace

    print(json.dumps(shape_trace.run(args.base, parts=args.parts.split(","), count=args.count,
                                     attention_count=args.attention_count, length=args.t5_length), indent=2))


def run_bind_probe(args, parser) -> None:
    from . import bind_probe

    print(json.dumps(bind_probe.run(args.base, args.out, args.recipe, args.steps, seed=args.train_seed, device=args.device,
                                    precision=_precision(args), sample_steps=args.sample_steps, class_count=args.class_count,
                                    learning_rate=args.lr, sample_seeds=args.sample_seeds), indent=2))


def run_aspect(args, parser) -> None:
    from . import aspect_run

    rows = aspect_run.run(args.out, steps=args.steps, seed=args.train_seed, sample_seed=args.sample_seed, variants=args.variant or aspect_run.VARIANTS, reuse=args.reuse)
    print(json.dumps(rows))
    print(aspect_run.table(rows))


# Each subcommand's handler: handler(args, parser) (the parser for usage errors, as parser.error).
HANDLERS = {
    "train-base": run_train_base, "flux-throughput": run_flux_throughput, "make-concepts": run_make_concepts, "judge": run_judge,
    "rubric": run_rubric, "stack": run_stack, "train-style-head": run_train_style_head, "train-colour-head": run_train_colour_head,
    "style-probe": run_style_probe, "frame-probe": run_frame_probe, "frame-vae": run_frame_vae, "split-probe": run_split_probe,
    "shape-probe": run_shape_probe, "shape-trace": run_shape_trace, "bind-probe": run_bind_probe, "aspect": run_aspect,
}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    HANDLERS[args.command](args, parser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
