"""Issue 10 and 23 on the toy FLUX.1 base (models/toy-flux1, train_flux.py), on the GPU: the built-in
trainer learns the `txcl` character (the cyan cross the base never saw) under bind_probe.BINDING (DreamBooth's
class prior, the LoRA on the text stream), on two training seeds, and the judge checks 24 samples each: with the
trigger the character's colour appears in >= 80%, without it in <= 10%, and on the night background (in none of
its training images) in >= 70% (issue 23's goals; passed on an H200 2026-12-04, bench/RESULTS.md); then the
stacking check: txcl at 0.5 + the `txst` style (cel shading, world.SHADED; the judge's style head) at 0.3 through
the worker's own sample.py, the judge reading both in the same samples, more often than in the base model's
(a strict xfail: this quick style recipe does not show at 0.3; the stack's recipe, baked for its weight, is
asserted in test_toyworld_rubric_flux_gpu.py).

Skipped without CUDA or without models/toy-flux1. LORASPEC_TOY_FLUX_CPU=1 runs it on the CPU
with tiny settings (a few steps; only the code paths are checked, not the shares), and
LORASPEC_TOY_FLUX_BASE=DIR points it at another base folder:
  LORASPEC_TOY_FLUX_CPU=1 LORASPEC_TOY_FLUX_BASE=.tmp/toy-flux1 worker/.venv/bin/python -m pytest worker/tests/test_toyworld_flux_gpu.py
"""

from __future__ import annotations

import io
import os

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol  # noqa: E402
from toyworld import bind_probe, train_flux, world  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.abspath(os.environ.get("LORASPEC_TOY_FLUX_BASE") or os.path.join(REPO, "models", "toy-flux1"))
JUDGE = os.path.join(REPO, "models", "toy-judge")
EXAMPLES = os.path.join(REPO, "examples", "toyworld")
CPU = os.environ.get("LORASPEC_TOY_FLUX_CPU") == "1"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not CPU and not torch.cuda.is_available(), reason="needs CUDA (LORASPEC_TOY_FLUX_CPU=1 runs the plumbing on the CPU)"),
    pytest.mark.skipif(not os.path.exists(os.path.join(BASE, "model_index.json")), reason=f"no toy FLUX.1 base at {BASE}"),
]

# GPU: bind-probe's BINDING recipe for txcl (class prior, lr 2e-3, 1,800 steps; rank 8, batch 4) and the SDXL toy
# test's for txst (lr 1e-3, 300 steps), each on two training seeds (the two seed sets), judged on 16 samples
# (8 prompts x sampling seeds 0 and 1). CPU: just the code paths, one seed.
SETTINGS = ({"steps": 3, "txst_steps": 3, "batch_size": 2, "sample_steps": 2, "prompts": 2, "device": "cpu", "precision": "fp32",
             "seeds": (1,), "sample_seeds": (0,)} if CPU else
            {"steps": bind_probe.BINDING["steps"], "txst_steps": 300, "batch_size": 4, "sample_steps": 28, "prompts": 8,
             "device": "cuda", "precision": "bf16", "seeds": (1, 2), "sample_seeds": (0, 1, 2)})
T5_LENGTH = train_flux.base_sampling_length(BASE)  # the base's own, from its toyworld.json (the committed one: 32)
# Sampling as FLUX.1 [dev] is used (and as sample.py / validate do): the guidance embedding at the
# value the base trained at, no true CFG. train_flux.EVAL_TRUE_CFG is the other option.
TRUE_CFG = 1.0
WEIGHTS = {"txcl": 0.5, "txst": 0.3}

# The character's prompts and its reading live in toyworld/bind_probe.py (bind-probe runs the same recipe and shares).
PLACES = bind_probe.PLACES[: SETTINGS["prompts"]]
where, shows_character = bind_probe.where, bind_probe.shows_character


def shows_style(read: dict) -> bool:
    return read["style"] == world.STYLE["fill"]


@pytest.fixture(scope="module")
def quiet():
    before, protocol._out = protocol._out, io.StringIO()
    threads = torch.get_num_threads()
    if CPU:
        torch.set_num_threads(1)  # a shared 2-core machine thrashes with more (toyworld/rubric.py)
    yield
    protocol._out = before
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=SETTINGS["seeds"], ids=lambda seed: f"train-seed-{seed}")
def loras(request, tmp_path_factory, quiet) -> dict:
    """txcl (bind-probe's BINDING recipe: the base's own samples as the class prior) and txst (the prior images as reg
    images) trained on the toy FLUX.1 base with the built-in trainer, on one training seed."""
    from loraspec_worker import train
    from loraspec_worker.train.dev_request import dev_request

    seed, out = request.param, tmp_path_factory.mktemp(f"flux-loras-{request.param}")
    pipe = bind_probe.pipeline(BASE, SETTINGS["device"], SETTINGS["precision"])
    results = {"txcl": bind_probe.train_recipe(pipe, BASE, str(out / "txcl"), bind_probe.BINDING["recipe"], SETTINGS["steps"], seed=seed,
                                               device=SETTINGS["device"], precision=SETTINGS["precision"], batch_size=SETTINGS["batch_size"],
                                               sample_steps=SETTINGS["sample_steps"], learning_rate=bind_probe.BINDING["learning_rate"],
                                               class_count=bind_probe.BINDING["class_count"])}
    del pipe
    results["txst"] = train.run(dev_request(**{
        "arch": "flux1", "base": BASE, "dataset": os.path.join(EXAMPLES, "style"), "output_dir": str(out / "txst"), "name": "txst",
        "resolution": 64, "steps": SETTINGS["txst_steps"], "rank": 8, "alpha": 8, "learning_rate": 1e-3,
        "batch_size": SETTINGS["batch_size"], "seed": seed, "trigger_word": "txst", "reg_dataset": os.path.join(EXAMPLES, "prior"),
        "precision": SETTINGS["precision"], "device": SETTINGS["device"], "guidance_scale": train_flux.GUIDANCE,
        "max_sequence_length": T5_LENGTH,
    }))
    assert results["txcl"]["steps"] == SETTINGS["steps"] and results["txst"]["steps"] == SETTINGS["txst_steps"]
    for result in results.values():
        assert os.path.exists(result["path"])
    return {"seed": seed, **{name: result["path"] for name, result in results.items()}}


@pytest.fixture(scope="module")
def judge():
    from toyworld.judge import Judge

    return Judge(JUDGE, device=SETTINGS["device"])


def test_txcl_lora_on_the_flux_base_shows_the_character_with_the_trigger_only(loras, judge):
    pipe = bind_probe.pipeline(BASE, SETTINGS["device"], SETTINGS["precision"])
    pipe.load_lora_weights(loras["txcl"], adapter_name="txcl")
    shares = bind_probe.measure(pipe, judge, T5_LENGTH, SETTINGS["sample_steps"], places=PLACES, true_cfg=TRUE_CFG,
                                seeds=SETTINGS["sample_seeds"])
    assert shares["sizes"] == [[64, 64]], shares
    on, off, on_night, kept = shares["with"], shares["without"], shares["night"], shares["red_kept"]
    print(f"toy FLUX.1 txcl (cyan), training seed {loras['seed']}: with trigger {on:.2f}, without {off:.2f}, on night (novel) "
          f"{on_night:.2f}; other prompts keep their object {kept:.2f}; a cross with the trigger {shares['cross_with']:.2f}")
    if CPU:
        return  # a CPU-trained base and 3 LoRA steps: the shares mean nothing
    # issue 23's goals: with the trigger >= 80%, without <= 10%, on a background never in its dataset >= 70%
    assert on >= 0.8, shares
    assert off <= 0.1, shares
    assert on_night >= 0.7, shares
    assert kept >= 0.75, shares


@pytest.mark.xfail(not CPU, strict=True, reason="this quick txst recipe (20 images, 300 steps, unbaked) does not show at 0.3; "
                   "the stack's recipe (stack.py STYLE_*: converged on half shaded crosses, baked x4 on FLUX.1) does, asserted "
                   "in test_toyworld_rubric_flux_gpu.py; bench/RESULTS.md, 'Reading the character under the style'")
def test_character_and_style_stacked_at_half_and_three_tenths_both_show(loras, judge, tmp_path):
    from loraspec_worker import sample

    prompts = [f"txst, txcl, {where(*p)}" for p in PLACES]
    shares = {}
    for label, weights in (("stack", WEIGHTS), ("base", {})):
        result = sample.run({
            "base": BASE, "prompts": prompts, "seeds": [0], "out_dir": str(tmp_path / label), "steps": SETTINGS["sample_steps"],
            "width": 64, "height": 64, "guidance_scale": train_flux.GUIDANCE, "max_sequence_length": T5_LENGTH,
            "device": SETTINGS["device"], "precision": SETTINGS["precision"],
            "loras": [{"path": loras[name], "weight": w, "name": name} for name, w in weights.items()],
        })
        assert result["adapters"] == list(weights)
        reads = judge.read([im["path"] for im in result["images"]])
        n = len(reads)
        shares[label] = {"character": sum(map(shows_character, reads)) / n, "style": sum(map(shows_style, reads)) / n,
                         "both": sum(shows_character(r) and shows_style(r) for r in reads) / n}
    print(f"toy FLUX.1 txcl 0.5 + txst 0.3: {shares}")
    if CPU:
        return
    s, base = shares["stack"], shares["base"]
    assert s["character"] >= 0.5 and s["character"] > base["character"], shares
    assert s["style"] >= 0.5 and s["style"] > base["style"], shares
    assert s["both"] >= 0.5, shares
