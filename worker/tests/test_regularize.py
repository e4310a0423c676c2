"""Regularisers and schedules (train/regularize.py): each on vs off on tiny bases and as maths
(seeded, with statistical bounds). CPU, one thread, a few tiny steps per run."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

from loraspec_worker import protocol, tiny_base, train
from loraspec_worker.train import regularize
from loraspec_worker.train.dev_request import dev_config as _dev_config, dev_request
from cuda_graph_fakes import patch_cuda_graph_failing, step_losses
from noise_dataset import write_noise_dataset

RES = 32


def dev_config(**fields):
    return _dev_config(**{"arch": "sdxl", **fields})
TAGS = "txcl, red square, blue background, outdoors, photo {i}"


@pytest.fixture(scope="module")
def sdxl_base(tmp_path_factory):
    return tiny_base.make_tiny_base("sdxl", str(tmp_path_factory.mktemp("base") / "sdxl"), seed=0)


@pytest.fixture(scope="module")
def tag_dataset(tmp_path_factory):
    return write_noise_dataset(tmp_path_factory.mktemp("tags"), 3, (32, 32), TAGS, name="img{i}")


def run(base, data, out, **over):
    req = dict(arch="sdxl", base=base, dataset=data, output_dir=str(out), resolution=RES, steps=4, rank=4, alpha=4,
               learning_rate=1e-2, seed=3, max_sequence_length=32, precision="fp32")
    req.update(over)
    return train.run(dev_request(**req))


def batches(evs) -> list[list[str]]:
    return [json.loads(e["message"])["captions"] for e in evs if e["type"] == "log" and e["level"] == "debug" and '"captions"' in e["message"]]


# ------------------------------------------------------------------ captions

def test_caption_dropout_with_cached_encodings_drops_about_the_rate(sdxl_base, tag_dataset, tmp_path, events):
    result = run(sdxl_base, tag_dataset, tmp_path, steps=8, batch_size=4, caption_dropout=0.3, debug={"log_batches": True})
    captions = [c for b in batches(events()) for c in b]
    assert len(captions) == 32 and math.isfinite(result["finalLoss"])
    empty = sum(c == "" for c in captions)
    assert 3 <= empty <= 17, empty  # Binomial(32, 0.3): mean 9.6, sd 2.6 (about 2.8 sd either side)
    assert all(c == "" or c.startswith("txcl, red square") for c in captions)  # cached path: captions as written


def test_dropout_draws_follow_the_rate_and_none_at_zero():
    g = torch.Generator().manual_seed(0)
    share = np.mean(regularize.dropped(dev_config(caption_dropout=0.1), 20000, g))
    assert abs(share - 0.1) < 0.01  # sd 0.002
    g = torch.Generator().manual_seed(0)
    before = g.get_state().clone()
    assert regularize.dropped(dev_config(), 5, g) == [False] * 5
    assert torch.equal(g.get_state(), before)  # off: no draw, the data order of old runs is kept


def test_shuffle_keeps_the_trigger_tag_first_and_every_tag():
    caption = "txcl, a, b, c, d, e"
    seen = set()
    for seed in range(20):
        out = regularize.shuffle_tags(caption, "txcl", torch.Generator().manual_seed(seed))
        tags = out.split(", ")
        assert tags[0] == "txcl" and sorted(tags[1:]) == ["a", "b", "c", "d", "e"]
        seen.add(out)
    assert len(seen) > 10
    # a caption without the trigger (a reg image) is shuffled whole; the trigger's tag moves first
    assert sorted(regularize.shuffle_tags("x, y, z", "txcl", torch.Generator().manual_seed(1)).split(", ")) == ["x", "y", "z"]
    assert regularize.shuffle_tags("a, txcl, b", "txcl", torch.Generator().manual_seed(1)).startswith("txcl, ")


def test_shuffle_tags_encodes_each_step_with_the_trigger_first(sdxl_base, tag_dataset, tmp_path, events):
    result = run(sdxl_base, tag_dataset, tmp_path, steps=4, batch_size=2, shuffle_tags=True, caption_dropout=0.25, debug={"log_batches": True})
    captions = [c for b in batches(events()) for c in b]
    assert len(captions) == 8 and math.isfinite(result["finalLoss"])
    kept = [c for c in captions if c]
    assert kept and all(c.startswith("txcl, ") for c in kept)
    assert any(not c.startswith("txcl, red square, blue background") for c in kept)  # shuffled


def test_shuffle_tags_with_cuda_graphs_is_a_usage_error():
    with pytest.raises(protocol.WorkerError) as err:
        dev_config(arch="sdxl", shuffle_tags=True, cuda_graphs=True)
    assert err.value.code == "E_USAGE" and "shuffle_tags" in err.value.message


# ------------------------------------------------------------------ noise offset and min-SNR (SDXL)

def test_noise_offset_shifts_each_image_and_channel_mean_by_offset_times_a_normal():
    g0, g1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    noise = torch.randn((2000, 4, 8, 8), generator=g0)
    same = torch.randn((2000, 4, 8, 8), generator=g1)
    out = regularize.offset_noise(same, dev_config(noise_offset=0.1), g1)
    diff = out - noise
    assert torch.allclose(diff, diff[:, :, :1, :1].expand_as(diff), atol=1e-6)  # constant over the image
    assert abs(float(diff[:, :, 0, 0].std()) - 0.1) < 0.005  # 0.1 x N(0,1): sd 0.1 over 8000 draws
    assert abs(float(diff.mean())) < 0.005
    # the per-image channel mean: sd sqrt(1/64) without, sqrt(1/64 + 0.1^2) with
    assert abs(float(noise.mean(dim=(2, 3)).std()) - 0.125) < 0.005
    assert abs(float(out.mean(dim=(2, 3)).std()) - math.sqrt(0.125**2 + 0.1**2)) < 0.006
    assert regularize.offset_noise(noise, dev_config(), g1) is noise


@pytest.mark.parametrize("v_prediction", [False, True])
def test_min_snr_weights_match_the_formula_per_timestep(v_prediction):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)  # SDXL's
    t = torch.arange(0, 1000, 7)
    w = regularize.min_snr_weights(sched.alphas_cumprod, t, 5.0, v_prediction).numpy()
    a = sched.alphas_cumprod.double().numpy()[t.numpy()]
    snr = a / (1 - a)
    expect = np.minimum(snr, 5.0) / (snr + 1 if v_prediction else snr)
    np.testing.assert_allclose(w, expect, rtol=1e-5)
    low = t < 100  # high SNR early: weight gamma/SNR < 1; late timesteps keep weight 1 (epsilon)
    assert (w[low.numpy()] < 1).all()
    if not v_prediction:
        assert np.allclose(w[snr < 5], 1.0)
    pred, target = torch.randn(len(t), 4, 2, 2), torch.randn(len(t), 4, 2, 2)
    loss = regularize.weighted_mse(pred, target, dev_config(min_snr_gamma=5.0), sched.alphas_cumprod, t, v_prediction)
    per = ((pred - target) ** 2).mean(dim=(1, 2, 3)).double().numpy()
    assert float(loss) == pytest.approx(float((per * expect).mean()), rel=1e-5)


# ------------------------------------------------------------------ flow-model timestep sampling

def _sigmas(method, tokens=1024, n=20000):
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler()  # shift 1: the sigma table is linear, sigma = 1 - u
    s, t = regularize.flow_sigmas(method, sched, n, torch.Generator().manual_seed(11), torch.device("cpu"), tokens)
    assert torch.allclose(t, s * 1000, atol=1.0)
    return s.numpy()


def test_uniform_sampling_is_flat():
    counts = np.histogram(_sigmas("uniform"), bins=4, range=(0, 1))[0] / 20000
    assert np.all(np.abs(counts - 0.25) < 0.015), counts  # sd 0.003 per bin


@pytest.mark.parametrize("method", ["sigmoid", "logit_normal"])
def test_sigmoid_and_logit_normal_sampling_gather_in_the_middle(method):
    s = _sigmas(method)
    middle = np.mean((s > 0.25) & (s < 0.75))
    assert abs(middle - 0.7280) < 0.015  # P(|N(0,1)| < logit(0.75) = 1.0986)
    assert abs(np.mean(s) - 0.5) < 0.01
    assert np.mean(s < 0.05) < 0.02  # tails thin (uniform would put 5% there)


def test_shift_sampling_moves_to_more_noise_as_the_resolution_grows():
    small, large = _sigmas("shift", tokens=256), _sigmas("shift", tokens=4096)
    for s, tokens in ((small, 256), (large, 4096)):
        mu = regularize.shift_mu(tokens)
        assert abs(np.median(s) - math.exp(mu) / (math.exp(mu) + 1)) < 0.015  # median of sigmoid(N) is 0.5, shifted
    assert regularize.shift_mu(256) == pytest.approx(0.5) and regularize.shift_mu(4096) == pytest.approx(1.15)
    assert np.mean(large) > np.mean(small) + 0.1


# ------------------------------------------------------------------ EMA

def test_ema_weights_follow_the_recurrence_and_differ_from_raw():
    p = [torch.zeros(3), torch.ones(2, 2)]
    ema = regularize.Ema(p, 0.9)
    expect = [x.clone() for x in p]
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        for x in p:
            x.add_(torch.randn(x.shape, generator=g))
        ema.update(p)
        expect = [0.9 * e + 0.1 * x for e, x in zip(expect, p)]
    for s, e, x in zip(ema.shadow, expect, p):
        torch.testing.assert_close(s, e)
        assert not torch.allclose(s, x)
    raw = [x.clone() for x in p]
    with ema.applied(p):
        torch.testing.assert_close(p[0], expect[0])
    torch.testing.assert_close(p[0], raw[0])
    # a checkpoint: the LoRA file holds the shadow, state.pt the raw weights; resuming restores both,
    # and a run resumed without EMA trains on from the raw weights
    saved = ema.state(p)
    for on in (True, False):
        loaded = [s.clone() for s in ema.shadow]
        again = regularize.resume_ema(dev_config(ema_decay=0.9 if on else None), loaded, saved)
        torch.testing.assert_close(loaded[1], raw[1])
        if on:
            torch.testing.assert_close(again.shadow[1], expect[1])
        else:
            assert again is None


def test_the_saved_lora_is_the_ema_one_and_resume_restores_it(sdxl_base, tag_dataset, tmp_path, events):
    from safetensors.torch import load_file

    plain = load_file(run(sdxl_base, tag_dataset, tmp_path / "plain", steps=4)["path"])
    straight = load_file(run(sdxl_base, tag_dataset, tmp_path / "ema", steps=4, save_every=2, ema_decay=0.5)["path"])
    assert plain.keys() == straight.keys()
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ema" / "lora.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["loraspec.ema_decay"] == "0.5" and meta["ss_noise_offset"] == "None" and meta["ss_shuffle_caption"] == "False"
    assert any(not torch.allclose(plain[k], straight[k]) for k in plain)
    # interrupted at the checkpoint of step 2, resumed: the same EMA LoRA as the straight run
    run(sdxl_base, tag_dataset, tmp_path / "cut", steps=4, save_every=2, ema_decay=0.5, debug={"stop_after_step": 2})
    resumed = load_file(run(sdxl_base, tag_dataset, tmp_path / "cut", steps=4, save_every=2, ema_decay=0.5, resume_from="latest")["path"])
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ the CUDA-graph split

def test_the_graph_split_matches_the_plain_loss_with_noise_offset_and_min_snr_on(monkeypatch):
    """SDXL's draw / loss_from / static_extra (the graph path, here its eager warm-up and fall-back)
    gives the plain path's losses with the options on, and the options change the loss."""
    tiny_base.build_sdxl(0)  # import diffusers' modules before torch.cuda is patched
    from diffusers.loaders import peft as _peft  # noqa: F401
    monkeypatch.setattr(protocol, "_out", io.StringIO())
    patch_cuda_graph_failing(monkeypatch, torch)

    def losses(graphed: bool, **options) -> list[float]:
        pipe = tiny_base.build_sdxl(0)
        cfg = dev_config(arch="sdxl", rank=4, alpha=4, precision="fp32", **options)
        arch = train.SDXL(pipe, cfg, torch.device("cpu"), torch.float32)
        g = torch.Generator().manual_seed(1)
        latents = torch.randn(2, 4, 16, 16, generator=g)
        text = {"embeds": torch.randn(2, 77, 64, generator=g), "pooled": torch.randn(2, 32, generator=g)}
        return step_losses(arch, cfg, latents, text, {"time_ids": [[32, 32, 0, 0, 32, 32]] * 2}, steps=4, graphed=graphed)

    on = {"noise_offset": 0.1, "min_snr_gamma": 5.0}
    np.testing.assert_allclose(losses(True, **on), losses(False, **on), rtol=1e-5)
    assert not np.allclose(losses(False, **on), losses(False), rtol=1e-3)


@pytest.mark.parametrize("arch", ["flux1", "flux2-klein", "zimage", "qwen-image"])
def test_flow_arches_train_with_dropout_shift_sampling_and_ema(arch, tmp_path_factory, tag_dataset, tmp_path, events):
    """The empty caption's cached encoding collates with the others on every flow arch (padded,
    listed or masked), and the resolution-dependent shift reads each arch's token count."""
    base = tiny_base.make_tiny_base(arch, str(tmp_path_factory.mktemp("flow") / arch), seed=0)
    result = run(base, tag_dataset, tmp_path, arch=arch, steps=3, batch_size=3, caption_dropout=0.5, timestep_sampling="shift",
                 ema_decay=0.9, debug={"log_batches": True})
    assert math.isfinite(result["finalLoss"])
    assert any(c == "" for b in batches(events()) for c in b)


@pytest.mark.parametrize("sampling, weighted", [("uniform", False), ("shift", False), ("sigmoid", True)])
def test_flux1s_graph_split_matches_its_plain_loss(sampling, weighted, monkeypatch):
    """FLUX.1's draw / loss_from / static_extra (the graph path; here its eager warm-up and fall-back, the capture
    failing on the CPU) gives the plain path's losses over the timestep samplings and with the toy base's per-pixel loss
    weight; draw keeps noised's order of draws (noise, then the timesteps), so the curve is the one before the split."""
    tiny_base.build_flux1(0)
    monkeypatch.setattr(protocol, "_out", io.StringIO())
    patch_cuda_graph_failing(monkeypatch, torch)

    def losses(graphed: bool) -> list[float]:
        pipe = tiny_base.build_flux1(0)
        cfg = dev_config(arch="flux1", rank=4, alpha=4, precision="fp32", timestep_sampling=sampling)
        arch = train.Flux1(pipe, cfg, torch.device("cpu"), torch.float32)
        g = torch.Generator().manual_seed(1)
        latents = torch.randn(1, 4, 16, 16, generator=g)
        text = {"embeds": torch.randn(1, 8, 32, generator=g), "pooled": torch.randn(1, 32, generator=g), "text_ids": torch.zeros(8, 3)}
        extra = {"time_ids": [[32, 32, 0, 0, 32, 32]]}
        if weighted:
            extra["loss_weight"] = 0.5 + torch.rand(1, 1, 16, 16, generator=g)
        return step_losses(arch, cfg, latents, text, extra, steps=4, graphed=graphed)

    np.testing.assert_allclose(losses(True), losses(False), rtol=1e-5)


def test_flux1s_draw_keeps_the_order_of_draws_before_the_split():
    """The split's draw takes noise then the timesteps from the generator, as FlowArch.noised does: the same x_t."""
    pipe = tiny_base.build_flux1(0)
    arch = train.Flux1(pipe, dev_config(arch="flux1", rank=4, alpha=4, precision="fp32", timestep_sampling="sigmoid"), torch.device("cpu"), torch.float32)
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    noise, sigmas, timesteps, noisy = arch.noised(latents, torch.Generator().manual_seed(5))
    d = arch.draw(latents, torch.Generator().manual_seed(5))
    torch.testing.assert_close(d["noise"], noise)
    torch.testing.assert_close(d["sigmas"], sigmas)
    torch.testing.assert_close(d["timesteps"], timesteps)
