"""The collector settles after the warm-up and after the first samples (train/loop.settle_gc): a full collection, then
what is alive frozen out of later full collections; unfrozen when the loop ends; debug.keep_gc leaves it alone."""

from __future__ import annotations

import gc

import pytest

from loraspec_worker import tiny_base, train
from loraspec_worker.train import loop, samples
from loraspec_worker.train.dev_request import dev_request
from noise_dataset import write_noise_dataset

RES = 32


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_base.make_tiny_base("sdxl", str(tmp_path_factory.mktemp("base") / "sdxl"), seed=0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_noise_dataset(tmp_path_factory.mktemp("dataset"), 2, (40, 48), "a photo of txcl, sample {i}", name="img{i}")


def run(base, dataset, out, monkeypatch, debug=None):
    """A 6-step run with samples at 4 and 6; returns (result, the steps gc.freeze ran after, freeze counts seen in each render)."""
    frozen_at, seen = [], {}
    freeze, render = gc.freeze, samples.SampleRenderer.render
    state_step = {}

    def counting_freeze():
        frozen_at.append(state_step.get("step"))
        freeze()

    def watching(self, step, *args):
        state_step["step"] = step
        seen[step] = gc.get_freeze_count()
        return render(self, step, *args)

    real_settle = loop.settle_gc

    def settle(state):
        state_step["step"] = state.step
        real_settle(state)

    monkeypatch.setattr(loop.gc, "freeze", counting_freeze)
    monkeypatch.setattr(loop, "settle_gc", settle)
    monkeypatch.setattr(samples.SampleRenderer, "render", watching)
    req = dev_request(arch="sdxl", base=base, dataset=dataset, output_dir=str(out), resolution=RES, steps=6, rank=4, alpha=4,
                      learning_rate=1e-2, seed=7, optimizer="adamw", precision="fp32")
    req["samples"] = {"every": 4, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 2.0, "first": False,
                      "width": RES, "height": RES}
    if debug:
        req["debug"] = debug
    return train.run(req), frozen_at, seen


def test_the_collector_settles_after_the_warm_up_and_the_first_samples_and_is_unfrozen_at_the_end(base, dataset, tmp_path, monkeypatch):
    assert gc.get_freeze_count() == 0
    result, frozen_at, seen = run(base, dataset, tmp_path / "out", monkeypatch)
    assert frozen_at == [2, 4]  # after step 2 (SETTLE_GC_AFTER_STEPS) and after the first samples; not after the last ones
    assert seen[4] > 0 and seen[6] > 0  # the renders ran with the objects frozen
    assert gc.get_freeze_count() == 0  # given back to the collector when the loop ended
    assert result["timing"]["between_parts"]["gc_settle"] > 0


def test_keep_gc_leaves_the_collector_alone(base, dataset, tmp_path, monkeypatch):
    result, frozen_at, seen = run(base, dataset, tmp_path / "out", monkeypatch, debug={"keep_gc": True})
    assert frozen_at == [] and seen == {4: 0, 6: 0}
    assert "gc_settle" not in result["timing"]["between_parts"]
