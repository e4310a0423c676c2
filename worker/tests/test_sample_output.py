"""A sample from latents to a PNG (train/sample_output.py): SDXL's latents decoded as the pipeline
decodes them (same pixels), the PNG written on the run's writer thread, its `sample` event only once
the file is on disk, and a failed write stopping the run with its error. CPU, tiny bases."""

from __future__ import annotations

import errno
import os
import time

import numpy as np
import pytest

from loraspec_worker import tiny_base, train
from loraspec_worker.train import sample_output, samples
from test_samples import SAMPLES, request  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402

RES = 32


pytestmark = pytest.mark.usefixtures("one_thread")


def _pipe(dtype):
    import torch

    pipe = tiny_base.build_sdxl(0)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dtype=dtype) if dtype != torch.float32 else pipe


def _both(pipe, dtype):
    """The pipeline's own PIL image and this module's pixels from the same latents."""
    import torch

    embeds, neg, pooled, neg_pooled = pipe.encode_prompt(prompt="a photo of txcl", device=torch.device("cpu"), num_images_per_prompt=1,
                                                         do_classifier_free_guidance=True, negative_prompt="")
    kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=neg, pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=neg_pooled,
                  num_inference_steps=2, guidance_scale=2.0, width=RES, height=RES)
    with torch.no_grad():
        own = pipe(generator=torch.Generator().manual_seed(42), output_type="pil", **kwargs).images[0]
        latents = pipe(generator=torch.Generator().manual_seed(42), output_type="latent", **kwargs).images
        assert latents.dtype == dtype
        mine = sample_output.decode_sdxl(pipe, latents)
    return np.asarray(own), mine


def test_an_fp32_vae_gives_the_pipelines_own_pixels():
    import torch

    own, mine = _both(_pipe(torch.float32), torch.float32)
    assert mine.dtype == np.uint8 and mine.shape == (RES, RES, 3)
    assert np.array_equal(own, mine)


def test_a_bf16_vae_decodes_in_bf16_as_the_pipeline_does():
    import torch

    pipe = _pipe(torch.bfloat16)
    own, mine = _both(pipe, torch.bfloat16)
    diff = np.abs(own.astype(np.int16) - mine.astype(np.int16))
    print(f"bf16: max |difference| {diff.max()}, mean {diff.mean():.4f} (0-255)")
    assert diff.max() == 0, diff.max()  # the pipeline does not upcast bf16 either: the same operations
    assert pipe.vae.dtype == torch.bfloat16


def test_an_fp16_vae_with_force_upcast_decodes_in_fp32_and_is_put_back():
    import torch

    pipe = _pipe(torch.float16)
    assert pipe.vae.config.force_upcast
    seen = []
    decode = pipe.vae.decode
    pipe.vae.decode = lambda z, **kw: (seen.append((z.dtype, pipe.vae.dtype)), decode(z, **kw))[1]
    own, mine = _both(pipe, torch.float16)
    assert seen == [(torch.float32, torch.float32)] * 2  # the pipeline's decode and this module's
    assert pipe.vae.dtype == torch.float16
    assert np.array_equal(own, mine)


def test_latents_mean_and_std_in_the_vae_config_are_applied_as_the_pipeline_applies_them():
    import torch

    pipe = _pipe(torch.float32)
    pipe.vae.register_to_config(latents_mean=[0.1, -0.2, 0.3, 0.0], latents_std=[0.9, 1.1, 1.3, 0.7])
    own, mine = _both(pipe, torch.float32)
    assert np.array_equal(own, mine)
    pipe.vae.register_to_config(latents_mean=None, latents_std=None)
    plain, _ = _both(pipe, torch.float32)
    assert not np.array_equal(own, plain)  # the test can fail: the statistics change the image


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {"sdxl": tiny_base.make_tiny_base("sdxl", str(root / "sdxl"), seed=0)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_noise_dataset(tmp_path_factory.mktemp("dataset"), 2, (40, 48), "a photo of txcl, sample {i}", name="img{i}")


def test_the_png_is_written_off_the_training_thread_and_announced_once_on_disk(bases, dataset, tmp_path, events, monkeypatch):
    write = sample_output.write_png
    on_disk_at_event = []

    def slow_write(image, path):  # a slow disk: training goes on meanwhile
        time.sleep(0.5)
        write(image, path)

    emit = samples.emit

    def checking_emit(event):
        if event["type"] == "sample":
            on_disk_at_event.append(os.path.exists(event["path"]))
        emit(event)

    monkeypatch.setattr(sample_output, "write_png", slow_write)
    monkeypatch.setattr(samples, "emit", checking_emit)
    result = train.run(request(bases, dataset, tmp_path, "sdxl", {**SAMPLES, "first": True}, steps=4))
    evs = events()
    order = [(e["type"], e.get("step")) for e in evs if e["type"] in ("sample", "loss")]
    assert on_disk_at_event == [True, True, True]
    assert order.index(("loss", 1)) < order.index(("sample", 0))  # step 1 trained while the step-0 PNG was written
    assert [s["step"] for s in result["samples"]] == [0, 2, 4]  # the last one too: the run waited for its write
    log = next(e["message"] for e in evs if e["type"] == "log" and e["message"].startswith("samples at step 2:"))
    assert "denoise" in log and "decode" in log and "png queue" in log, log


def test_a_failed_png_write_stops_the_run_with_its_error(bases, dataset, tmp_path, events, monkeypatch):
    def full(image, path):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(sample_output, "write_png", full)
    with pytest.raises(OSError) as err:
        train.run(request(bases, dataset, tmp_path, "sdxl", {**SAMPLES, "every": 1}, steps=6))
    assert err.value.errno == errno.ENOSPC  # raised on the training thread, as a synchronous write raised it
    evs = events()
    assert not [e for e in evs if e["type"] == "sample"]
    assert max(e["step"] for e in evs if e["type"] == "loss") < 6  # stopped at the step after the failed write
    assert not any(name.endswith(".png") for name in os.listdir(tmp_path / "samples"))
