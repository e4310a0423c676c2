"""Samples during training (train/samples.py) on tiny SDXL and FLUX.1 bases, on the CPU: files,
events, and a loss curve that sampling does not change."""

from __future__ import annotations

import os
import time

import pytest
from PIL import Image

from loraspec_worker import tiny_base, train
from loraspec_worker.train.dev_request import dev_request
from noise_dataset import write_noise_dataset  # noqa: E402

RES = 32  # pixels; the tiny VAEs scale by 2
SLOW_S = 1.0


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {arch: tiny_base.make_tiny_base(arch, str(root / arch), seed=0) for arch in ("sdxl", "flux1", "flux2-klein", "zimage", "qwen-image")}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_noise_dataset(tmp_path_factory.mktemp("dataset"), 2, (40, 48), "a photo of txcl, sample {i}", name="img{i}")


def request(bases, dataset, out, arch, samples=None, steps=4):
    req = dev_request(arch=arch, base=bases[arch], dataset=dataset, output_dir=str(out), resolution=RES, steps=steps, rank=4, alpha=4,
                      learning_rate=1e-2, seed=7, max_sequence_length=32, optimizer="adamw", precision="fp32")
    if samples is not None:
        req["samples"] = samples
    return req


SAMPLES = {"every": 2, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 2.0, "first": False, "width": RES, "height": RES}


@pytest.mark.parametrize("arch", ["sdxl", "flux1"])
def test_samples_every_two_steps_and_at_the_end_give_files_and_events(arch, bases, dataset, tmp_path, events):
    result = train.run(request(bases, dataset, tmp_path, arch, SAMPLES))
    evs = events()
    samples = [e for e in evs if e["type"] == "sample"]
    assert [(e["step"], e["seed"], e["prompt"]) for e in samples] == [(2, 42, "a photo of txcl"), (4, 42, "a photo of txcl")]
    names = sorted(os.listdir(tmp_path / "samples"))
    assert names == ["step-000002-p0-s42.png", "step-000004-p0-s42.png"]  # no temp files left
    for e in samples:
        assert os.path.isabs(e["path"]) and os.path.exists(e["path"])
        with Image.open(e["path"]) as im:
            assert im.size == (RES, RES)
    assert [s["step"] for s in result["samples"]] == [2, 4]
    # The LoRA is active while sampling: what it learned between step 2 and 4 shows.
    first, last = (open(e["path"], "rb").read() for e in samples)
    assert first != last


def test_sampling_leaves_the_loss_curve_unchanged(bases, dataset, tmp_path, events):
    # With `first` too: the render before step 1 leaves the training RNG as it found it.
    train.run(request(bases, dataset, tmp_path / "on", "flux1", {**SAMPLES, "every": 1, "first": True}))
    assert [e["step"] for e in events() if e["type"] == "sample"] == [0, 1, 2, 3, 4]
    on = [e["loss"] for e in events() if e["type"] == "loss"]
    before = len(events())
    train.run(request(bases, dataset, tmp_path / "off", "flux1"))
    off = [e["loss"] for e in events()[before:] if e["type"] == "loss"]
    assert len(on) == 4 and on == off
    assert not (tmp_path / "off" / "samples").exists()



def test_first_renders_the_base_before_the_first_step(bases, dataset, tmp_path, events, monkeypatch):
    """samples.first: a step-0 column before any optimizer step, drawn by the base itself (the
    LoRA's up-projections start at zero), so the strip starts from what the base draws."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionXLPipeline

    from loraspec_worker.train import samples

    render = samples.SampleRenderer.render

    def slow_first(self, step, *args):  # the step-0 render made long enough to see where its time goes
        if step == 0:
            time.sleep(SLOW_S)
        return render(self, step, *args)

    monkeypatch.setattr(samples.SampleRenderer, "render", slow_first)
    result = train.run(request(bases, dataset, tmp_path, "sdxl", {**SAMPLES, "first": True}, steps=2))
    evs = events()
    kinds = [(e["type"], e.get("step")) for e in evs if e["type"] in ("sample", "loss")]
    assert kinds[0] == ("sample", 0) and kinds.index(("loss", 1)) > 0
    assert [e["step"] for e in evs if e["type"] == "sample"] == [0, 2]
    # Its time is in-training sampling (between steps), as the other samples' is, not "other".
    assert result["timing"]["between_steps_s"] >= SLOW_S and result["timing"]["other_s"] < SLOW_S, result["timing"]
    # and the samples' part of it is named (between_parts: with the last step's sample, which runs after it)
    parts = result["timing"]["between_parts"]
    assert parts["samples"] >= SLOW_S and set(parts) == {"samples", "rest"}, parts
    # each step's wait for its loss is split from the host's own work; the loop's collections are counted
    split, collected = result["timing"]["host_split"], result["timing"]["gc"]
    assert 0 <= split["wait_median_s"] and 0 <= split["host_median_s"] and split["wait_median_s"] + split["host_median_s"] <= result["timing"]["steps_s"], split
    assert len(collected["collections"]) == 3 and collected["max_s"] <= sum(collected["seconds"]) + 1e-9, collected
    pipe = StableDiffusionXLPipeline.from_pretrained(bases["sdxl"], torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    base = pipe(prompt=SAMPLES["prompts"][0], negative_prompt="", num_inference_steps=SAMPLES["steps"], guidance_scale=SAMPLES["guidance_scale"], width=RES, height=RES,
                generator=torch.Generator(device="cpu").manual_seed(SAMPLES["seeds"][0])).images[0]
    with Image.open(tmp_path / "samples" / "step-000000-p0-s42.png") as im:
        step0 = np.asarray(im.convert("RGB"), dtype=np.int16)
    with Image.open(tmp_path / "samples" / "step-000002-p0-s42.png") as im:
        step2 = np.asarray(im.convert("RGB"), dtype=np.int16)
    to_base, trained = np.abs(step0 - np.asarray(base, dtype=np.int16)).mean(), np.abs(step2 - step0).mean()
    print(f"step 0 vs the base pipeline: {to_base:.2f}, step 2 vs step 0: {trained:.2f} (mean |difference|, 0-255)")
    assert to_base <= 0.01, to_base  # the base's own image (the LoRA's zero up-projections add exact zeros)
    assert trained > 1, trained  # and the trained steps do change it


def test_a_resumed_run_renders_no_second_base_column(bases, dataset, tmp_path, events):
    req = request(bases, dataset, tmp_path, "sdxl", {**SAMPLES, "first": True}, steps=4)
    train.run({**req, "save_every": 2, "debug": {"stop_after_step": 2}})
    before = len(events())
    train.run({**req, "save_every": 2, "resume_from": "latest"})
    assert [e["step"] for e in events()[:before] if e["type"] == "sample"] == [0, 2]
    assert [e["step"] for e in events()[before:] if e["type"] == "sample"] == [4]

@pytest.mark.parametrize("arch", ["flux2-klein", "zimage", "qwen-image"])
def test_the_other_arches_render_their_samples_with_cfg(arch, bases, dataset, tmp_path, events):
    # One step, one render: the cached encodings (and the empty negative prompt for CFG) reach the pipeline.
    train.run(request(bases, dataset, tmp_path, arch, {**SAMPLES, "every": 1, "steps": 1}, steps=1))
    [sample] = [e for e in events() if e["type"] == "sample"]
    assert sample["step"] == 1 and os.path.exists(sample["path"])
    with Image.open(sample["path"]) as im:
        assert im.size == (RES, RES)


def test_sdxl_with_a_text_encoder_lora_samples_with_the_encoders_as_trained(bases, dataset, tmp_path, events):
    req = request(bases, dataset, tmp_path, "sdxl", {**SAMPLES, "every": 1}, steps=1)
    req["train_text_encoder"] = True
    train.run(req)
    [sample] = [e for e in events() if e["type"] == "sample"]
    assert os.path.exists(sample["path"])


def test_the_final_lora_is_written_while_the_last_samples_render(bases, dataset, tmp_path, events, monkeypatch):
    """After the last step the final LoRA is copied and written on the checkpoint writer's thread (loop.start_final_write)
    while the last samples render: the file appears during that render, and the run ends with it as before."""
    from loraspec_worker.train import samples

    render = samples.SampleRenderer.render
    final = tmp_path / "out" / "lora.safetensors"
    seen = {}

    def watching(self, step, *args):
        if step == self.cfg.steps:
            deadline = time.time() + 20
            while not final.exists() and time.time() < deadline:
                time.sleep(0.01)
            seen["during"] = final.exists()
        return render(self, step, *args)

    monkeypatch.setattr(samples.SampleRenderer, "render", watching)
    req = request(bases, dataset, tmp_path / "out", "sdxl", SAMPLES, steps=2) | {"name": "lora"}
    result = train.run(req)
    assert seen == {"during": True} and result["path"] == str(final) and result["keys"] > 0
    assert [e["path"] for e in events() if e["type"] == "checkpoint" and e["path"] == str(final)] == [str(final)]  # announced once
    assert {s["step"] for s in result["samples"]} == {2}  # the last samples rendered, on disk


def test_a_cancel_during_the_last_samples_ends_the_run_done_with_its_final_lora(bases, dataset, tmp_path, events, monkeypatch):
    """The final LoRA's write starts after the last step (loop.start_final_write): a stop asked for while the last samples
    render no longer turns the finished run into a cancelled one with no file."""
    from loraspec_worker import protocol
    from loraspec_worker.train import samples

    render = samples.SampleRenderer.render

    def cancel_at_the_end(self, step, *args):
        if step == self.cfg.steps:
            monkeypatch.setattr(protocol, "_cancel_requested", True)  # as the SIGINT handler sets it
        return render(self, step, *args)

    monkeypatch.setattr(samples.SampleRenderer, "render", cancel_at_the_end)
    result = train.run(request(bases, dataset, tmp_path / "out", "sdxl", SAMPLES, steps=2))
    assert os.path.exists(result["path"]) and result["steps"] == 2


def _capturing_first_render(monkeypatch, seen, watch):
    """SampleRenderer says its first render captures the sample graph (as SDXL's on CUDA does); `watch(self, step)`
    records what is on disk when that render starts."""
    from loraspec_worker.train import samples

    render = samples.SampleRenderer.render
    state = {"rendered": False}

    def captures_next(self):
        return not state["rendered"]

    def rendering(self, step, *args):
        if not state["rendered"]:
            seen.update(watch(self, step))
        state["rendered"] = True
        return render(self, step, *args)

    monkeypatch.setattr(samples.SampleRenderer, "captures_next", captures_next)
    monkeypatch.setattr(samples.SampleRenderer, "render", rendering)


def test_the_capturing_render_goes_before_its_steps_save_instead_of_waiting_for_the_write(bases, dataset, tmp_path, events, monkeypatch):
    """The render that captures the sample graph must not overlap the checkpoint writer's CUDA work; it runs before the
    save of its step (loop.render_samples) rather than after it, waiting for the whole write (~1 s on SDXL)."""
    out = tmp_path / "out"
    seen = {}
    _capturing_first_render(monkeypatch, seen, lambda self, step: {"step": step, "checkpoint": (out / "checkpoints" / f"step-{step:06d}").exists()})
    train.run(request(bases, dataset, out, "sdxl", SAMPLES, steps=4) | {"save_every": 2})
    assert seen == {"step": 2, "checkpoint": False}
    evs = [(e["type"], e["step"]) for e in events() if e["type"] in ("sample", "checkpoint") and e["step"] == 2]
    assert evs == [("sample", 2), ("checkpoint", 2)]


def test_a_capturing_render_at_the_last_step_goes_before_the_final_write(bases, dataset, tmp_path, events, monkeypatch):
    out = tmp_path / "out"
    seen = {}
    _capturing_first_render(monkeypatch, seen, lambda self, step: {"step": step, "final": (out / "lora.safetensors").exists()})
    result = train.run(request(bases, dataset, out, "sdxl", SAMPLES, steps=2) | {"name": "lora"})
    assert seen == {"step": 2, "final": False} and os.path.exists(result["path"])
    assert {s["step"] for s in result["samples"]} == {2}
