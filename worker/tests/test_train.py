"""The built-in trainer and sampler on tiny bases made in the test (CPU, a few steps each)."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from loraspec_worker import protocol, sample, tiny_base, train
from noise_dataset import write_noise_dataset  # noqa: E402
from loraspec_worker.protocol import WorkerError
from loraspec_worker.train.dev_request import dev_config, dev_request
from loraspec_worker.train import buckets
from loraspec_worker.train import setup as train_setup_module

RES = 32  # pixels; latents are 16x16 with the tiny VAEs (scale factor 2)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {arch: tiny_base.make_tiny_base(arch, str(root / arch), seed=0) for arch in tiny_base.ARCHES}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_noise_dataset(tmp_path_factory.mktemp("dataset"), 3, (40, 48), "a photo of txcl, sample {i}", name="img{i}")


@pytest.fixture
def events(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)

    def read():
        return [json.loads(line) for line in buf.getvalue().splitlines()]

    return read


def request(bases, dataset, out, arch="flux1", **over):
    req = {
        "arch": arch,
        "base": bases[arch],
        "dataset": dataset,
        "output_dir": str(out),
        "resolution": RES,
        "steps": 3,
        "rank": 4,
        "alpha": 4,
        "learning_rate": 1e-2,  # large so a 3-step LoRA visibly changes samples
        "seed": 7,
        "trigger_word": "txcl",
        "contract_hash": "sha256:abc123",
        "max_sequence_length": 32,
    }
    req.update(over)
    return dev_request(**req)


# Expected LoRA key patterns per arch (lora-formats.md §2a/§2b: diffusers/peft names).
KEY_EXAMPLES = {
    "sdxl": "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
    "flux1": "transformer.transformer_blocks.0.attn.to_q.lora_A.weight",
    "flux2-klein": "transformer.transformer_blocks.0.attn.to_q.lora_A.weight",
    "zimage": "transformer.layers.0.attention.to_q.lora_A.weight",
    "qwen-image": "transformer.transformer_blocks.0.attn.add_q_proj.lora_A.weight",
}


@pytest.mark.parametrize("arch", ["sdxl", "flux1", "flux2-klein", "zimage", "qwen-image"])
def test_train_logs_finite_loss_and_writes_a_diffusers_lora(arch, bases, dataset, tmp_path, events):
    from safetensors import safe_open

    result = train.run(request(bases, dataset, tmp_path, arch))
    evs = events()
    losses = [e for e in evs if e["type"] == "loss"]
    assert [e["step"] for e in losses] == [1, 2, 3]
    assert all(isinstance(e["loss"], float) and math.isfinite(e["loss"]) for e in losses)
    assert any(e["type"] == "progress" and e["task"] == "train" and e["current"] == 3 and e["total"] == 3 for e in evs)
    assert os.path.exists(result["path"])
    with safe_open(result["path"], "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
        assert KEY_EXAMPLES[arch] in keys
        a = f.get_tensor(KEY_EXAMPLES[arch])
        b = f.get_tensor(KEY_EXAMPLES[arch].replace("lora_A", "lora_B"))
    assert a.shape[0] == 4 and b.shape[1] == 4  # rank
    assert all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    assert meta["format"] == "pt"
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "4"
    assert meta["modelspec.trigger_phrase"] == "txcl"
    assert meta["loraspec.contract_hash"] == "sha256:abc123"
    adapter = json.loads(meta["lora_adapter_metadata"])
    prefix = "unet" if arch == "sdxl" else "transformer"
    assert adapter[f"{prefix}.r"] == 4


@pytest.mark.parametrize("arch", ["sdxl", "flux1", "flux2-klein", "zimage", "qwen-image"])
def test_saved_lora_loads_fully_and_changes_samples(arch, bases, dataset, tmp_path, events):
    import torch
    from diffusers import DiffusionPipeline

    result = train.run(request(bases, dataset, tmp_path / "run", arch))
    pipe = DiffusionPipeline.from_pretrained(bases[arch])
    pipe.set_progress_bar_config(disable=True)
    denoiser = pipe.unet if arch == "sdxl" else pipe.transformer
    kwargs = {"num_inference_steps": 2, "width": RES, "height": RES, "output_type": "np"}
    if arch != "sdxl":
        kwargs["max_sequence_length"] = 32
    before = pipe(prompt="a photo of txcl", generator=torch.Generator().manual_seed(1), **kwargs).images
    pipe.load_lora_weights(result["path"], adapter_name="t")
    # Every tensor in the file found its module: peft holds exactly as many lora_A/B tensors.
    loaded = [n for n, _ in denoiser.named_parameters() if ".lora_A.t." in n or ".lora_B.t." in n]
    assert len(loaded) == result["keys"]
    after = pipe(prompt="a photo of txcl", generator=torch.Generator().manual_seed(1), **kwargs).images
    assert np.abs(after - before).max() > 1e-4


@pytest.mark.parametrize("arch", ["sdxl", "flux2-klein", "zimage", "qwen-image"])
def test_batches_and_accumulation(arch, bases, dataset, tmp_path, events):
    result = train.run(request(bases, dataset, tmp_path, arch, steps=2, batch_size=2, gradient_accumulation=2))
    assert result["steps"] == 2 and math.isfinite(result["finalLoss"])


def test_sample_command_writes_pngs_with_stacked_loras(bases, dataset, tmp_path, events):
    result = train.run(request(bases, dataset, tmp_path / "run", "flux1"))
    out = sample.run({
        "base": bases["flux1"], "prompts": ["a photo of txcl", "txcl on the moon"], "seeds": [1, 2],
        "out_dir": str(tmp_path / "samples"), "steps": 2, "width": RES, "height": RES, "max_sequence_length": 32,
        "loras": [{"path": result["path"], "weight": 0.8}, {"path": result["path"], "weight": 0.3, "name": "again"}],
    })
    assert len(out["images"]) == 4 and out["adapters"][1] == "again"
    samples = [e for e in events() if e["type"] == "sample"]
    assert [(e["prompt"], e["seed"]) for e in samples] == [("a photo of txcl", 1), ("a photo of txcl", 2), ("txcl on the moon", 1), ("txcl on the moon", 2)]
    assert all(os.path.exists(e["path"]) for e in samples)


def test_sample_writes_the_file_names_the_request_gives(bases, tmp_path, events):
    out = sample.run({"base": bases["flux1"], "prompts": ["a", "b"], "seeds": [3], "out_dir": str(tmp_path), "steps": 1,
                      "width": RES, "height": RES, "max_sequence_length": 32, "files": ["first.png", "second.png"]})
    assert [os.path.basename(i["path"]) for i in out["images"]] == ["first.png", "second.png"]
    assert sorted(os.listdir(tmp_path)) == ["first.png", "second.png"]


@pytest.mark.parametrize("files", [["a.png"], ["a.png", "../b.png"], ["a.png", "sub/b.png"], ["a.png", "b.jpg"], "a.png", ["a.png", 3]])
def test_sample_refuses_file_names_that_are_not_one_plain_png_per_image(bases, tmp_path, events, files):
    with pytest.raises(WorkerError) as err:
        sample.run({"base": bases["flux1"], "prompts": ["a", "b"], "out_dir": str(tmp_path), "files": files})
    assert err.value.code == "E_USAGE" and "files" in err.value.message
    assert os.listdir(tmp_path) == []


def test_sample_rejects_a_missing_lora(bases, tmp_path, events):
    with pytest.raises(WorkerError) as err:
        sample.run({"base": bases["flux1"], "prompts": ["x"], "out_dir": str(tmp_path), "loras": [{"path": str(tmp_path / "nope.safetensors")}]})
    assert err.value.code == "E_FILE_NOT_FOUND"


def test_resume_continues_the_same_loss_curve(bases, dataset, tmp_path, events):
    straight = train.run(request(bases, dataset, tmp_path / "a", steps=6, save_every=3))
    straight_losses = [e["loss"] for e in events() if e["type"] == "loss"]
    assert len(straight_losses) == 6

    first = train.run(request(bases, dataset, tmp_path / "b", steps=6, save_every=3, debug={"stop_after_step": 3}))
    assert first["steps"] == 3
    n_before = len(events())
    resumed = train.run(request(bases, dataset, tmp_path / "b", steps=6, save_every=3, resume_from="latest"))
    resumed_events = events()[n_before:]
    assert resumed["startStep"] == 3 and resumed["steps"] == 6
    resumed_losses = [e["loss"] for e in resumed_events if e["type"] == "loss"]
    assert [e["step"] for e in resumed_events if e["type"] == "loss"] == [4, 5, 6]
    np.testing.assert_allclose(resumed_losses, straight_losses[3:], rtol=1e-4, atol=1e-6)
    assert straight["finalLoss"] == pytest.approx(resumed["finalLoss"], rel=1e-4)


def test_nan_loss_stops_with_diverged_and_saves_nothing(bases, dataset, tmp_path, events):
    with pytest.raises(WorkerError) as err:
        train.run(request(bases, dataset, tmp_path, steps=4, save_every=1, debug={"inject_nan_at_step": 3}))
    assert err.value.code == "E_TRAIN_DIVERGED"
    assert not os.path.exists(tmp_path / "lora.safetensors")
    saved_steps = sorted(os.listdir(tmp_path / "checkpoints"))
    assert saved_steps == ["step-000001", "step-000002"]
    assert any(e["type"] == "loss" and e["step"] == 3 and e["loss"] is None for e in events())


def _batch1_losses(n: int, seed: int) -> list[float]:
    """A healthy batch-1 diffusion loss: lognormal around 0.011 with sigma 1.2, the spread of a 400-step
    toy SDXL run (median 0.011, 90th percentile 0.05): the loss swings with the sampled timestep."""
    import random

    rng = random.Random(seed)
    return [0.011 * math.exp(rng.gauss(0, 1.2)) for _ in range(n)]


@pytest.mark.parametrize(
    "losses, factor, diverged",
    [
        ([1.0] * 60, 4, False),
        ([1.0] * 60 + [10.0] * 20, 4, True),
        ([1.0] * 60 + [3.0] * 20, 4, False),
        ([1.0] * 60 + [50.0] * 2, 4, True),  # a blow-up shows within two steps
        ([1.0] * 4 + [50.0] * 5, 4, False),  # too early to judge
        ([1.0] * 30 + [50.0] * 5, 4, False),  # still too early
    ],
)
def test_loss_spike_rule(losses, factor, diverged):
    cfg = dev_config(arch="flux1", failure={"loss_spike_factor": factor})
    if diverged:
        with pytest.raises(train.Diverged):
            train.check_spike(cfg, losses, len(losses))
    else:
        train.check_spike(cfg, losses, len(losses))


@pytest.mark.parametrize("seed", range(5))
def test_loss_spike_rule_never_fires_on_a_healthy_batch1_run(seed):
    # The rule is checked after every step: a 2000-step run whose loss only swings with the timestep
    # never counts as diverged (the mean of 5 against a median of 20 fired in every such run).
    cfg = dev_config(arch="sdxl", failure={"loss_spike_factor": 4})
    losses = _batch1_losses(2000, seed)
    for n in range(1, len(losses) + 1):
        train.check_spike(cfg, losses[:n], n)
    # ...and a real blow-up of that run is still caught.
    with pytest.raises(train.Diverged):
        for n in range(1, 40):
            train.check_spike(cfg, losses + [0.5] * n, len(losses) + n)


def _spike_windows(recent: int, baseline: int, first: int) -> dict:
    return {"loss_spike_recent_steps": recent, "loss_spike_baseline_steps": baseline, "loss_spike_first_step": first}


@pytest.mark.parametrize(
    "losses, windows, diverged",
    [
        # the recent window is the request's: 3 steps at 10x show over 3, not over 20
        ([1.0] * 100 + [10.0] * 3, (3, 200, 40), True),
        ([1.0] * 100 + [10.0] * 3, (20, 200, 40), False),
        # the baseline window is the request's: 200 steps back sees only the calm stretch, 250 the early high loss too
        ([100.0] * 50 + [1.0] * 200 + [5.0] * 20, (20, 200, 40), True),
        ([100.0] * 50 + [1.0] * 200 + [5.0] * 20, (20, 250, 40), False),
        # the first step is the request's: judged at the 8th loss with first 8, not with 9 (nor with core's 40)
        ([1.0] * 7 + [100.0], (5, 10, 8), True),
        ([1.0] * 7 + [100.0], (5, 10, 9), False),
        ([1.0] * 10 + [10.0] * 5, (5, 10, 8), True),
        ([1.0] * 10 + [10.0] * 5, (20, 200, 40), False),
    ],
)
def test_loss_spike_rule_applies_the_windows_the_request_sends(losses, windows, diverged):
    # core's knowledge/loss-spike.ts is the rule's one home; the worker applies whatever the request says
    cfg = dev_config(arch="sdxl", failure={"loss_spike_factor": 4, **_spike_windows(*windows)})
    if diverged:
        with pytest.raises(train.Diverged, match=f"mean of the last {windows[0]} steps"):
            train.check_spike(cfg, losses, len(losses))
    else:
        train.check_spike(cfg, losses, len(losses))


@pytest.mark.parametrize("field", ["loss_spike_factor", "loss_spike_recent_steps", "loss_spike_baseline_steps", "loss_spike_first_step"])
def test_a_request_without_a_loss_spike_field_is_a_usage_error(field):
    request = dev_request(arch="sdxl", base="-", dataset="-", output_dir="-")
    del request["failure"][field]
    with pytest.raises(WorkerError) as err:
        train.parse_config(request)
    assert err.value.code == "E_USAGE" and field in err.value.message


def test_oom_retries_with_the_allowed_fallback(bases, dataset, tmp_path, events):
    result = train.run(request(bases, dataset, tmp_path, steps=2, failure={"on_oom": "fallback", "oom_fallbacks": ["gradient_checkpointing"]},
                               debug={"raise_oom_once": True}))
    assert result["fallbacksApplied"] == ["turned on gradient checkpointing"]
    assert any(e["type"] == "warning" and e.get("code") == "W_OOM_FALLBACK" for e in events())


def test_oom_fallbacks_skip_what_is_already_on_and_can_quantize_the_base(bases, dataset, tmp_path, events):
    result = train.run(request(bases, dataset, tmp_path, steps=2, gradient_checkpointing=True, debug={"raise_oom_once": True},
                               failure={"on_oom": "fallback", "oom_fallbacks": ["gradient_checkpointing", "quantize_base"]}))
    assert result["fallbacksApplied"] == ["held the base in fp8"]
    assert any(e["type"] == "log" and "fp8 base" in e.get("message", "") for e in events())


def test_oom_without_fallbacks_is_a_coded_error(bases, dataset, tmp_path, events):
    with pytest.raises(WorkerError) as err:
        train.run(request(bases, dataset, tmp_path, steps=2, debug={"raise_oom_once": True}))
    assert err.value.code == "E_OUT_OF_MEMORY" and err.value.retryable


@pytest.mark.parametrize(
    "over, code",
    [
        ({"arch": "sd35"}, "E_NOT_SUPPORTED"),
        ({"arch": "sd1"}, "E_USAGE"),
        ({"dataset": "/nonexistent/folder"}, "E_DATASET_NOT_FOUND"),
        ({"optimizer": "adamw8bit", "device": "cpu"}, "E_NOT_SUPPORTED"),
        ({"resolution": 30}, "E_USAGE"),
        ({"base": "/nonexistent/base"}, "E_FILE_NOT_FOUND"),
    ],
)
def test_bad_requests_get_coded_errors(over, code, bases, dataset, tmp_path, events):
    req = request(bases, dataset, tmp_path)
    req.update(over)
    with pytest.raises(WorkerError) as err:
        train.run(req)
    assert err.value.code == code


@pytest.mark.parametrize("field", ["steps", "compile", "targets", "guidance_scale", "sample_merge", "failure"])
def test_a_request_that_leaves_a_setting_out_is_a_usage_error_naming_it(field):
    """Core resolves every setting; the worker has no default to fall back on."""
    req = dev_request(arch="flux1", base="b", dataset="d", output_dir="o")
    del req[field]
    with pytest.raises(WorkerError) as err:
        train.parse_config(req)
    assert err.value.code == "E_USAGE" and f"'{field}'" in err.value.message


@pytest.mark.parametrize("over, why", [
    ({"arch": "sdxl", "cuda_graphs": True, "gradient_checkpointing": True}, "cuda_graphs with gradient checkpointing"),
    ({"arch": "flux2-klein", "cuda_graphs": True}, "cuda_graphs with flux2-klein has no graph-replayable loss"),
    ({"arch": "flux1", "train_text_encoder": True}, "train_text_encoder for flux1"),
])
def test_settings_that_cannot_run_together_are_a_usage_error(over, why):
    with pytest.raises(WorkerError) as err:
        train.parse_config(dev_request(base="b", dataset="d", output_dir="o", **over))
    assert err.value.code == "E_USAGE" and why in err.value.message


def test_flux1_under_the_cuda_graph_parses_for_a_bench_ab():
    """FLUX.1's loss splits (draw / loss_from), so a request for its whole-step graph over compiled blocks and fp8 GEMMs
    parses (bench/gpu-wholerun.py --set cuda_graphs=true); the plan never asks for it (cudaGraphsFor: SDXL only)."""
    cfg = train.parse_config(dev_request(arch="flux1", base="b", dataset="d", output_dir="o", cuda_graphs=True, compile=True, fp8_matmul=True))
    assert cfg.cuda_graphs and cfg.compile and cfg.fp8_matmul


def test_sdxl_compiled_blocks_under_the_cuda_graph_parse():
    """Core asks for both on a long SDXL run (plan/train-settings.ts compileFor; measured 0.083 vs
    0.105 s/step on an H200): the graph replays the compiled blocks' kernels."""
    cfg = train.parse_config(dev_request(arch="sdxl", base="b", dataset="d", output_dir="o", cuda_graphs=True, compile=True, channels_last=True))
    assert cfg.cuda_graphs and cfg.compile


def test_empty_dataset(bases, tmp_path, events):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(WorkerError) as err:
        train.run(request(bases, str(empty), tmp_path / "out"))
    assert err.value.code == "E_DATASET_EMPTY"


GOLDEN = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "core", "test", "compile", "golden", "diffusers")


@pytest.mark.parametrize("name", sorted(os.listdir(GOLDEN)) if os.path.isdir(GOLDEN) else [])
def test_compiled_requests_parse_in_the_worker(name):
    """packages/core/src/compile/diffusers.ts and train.parse_config agree on every field."""
    with open(os.path.join(GOLDEN, name)) as f:
        req = json.load(f)
    known = set(train.Config.__dataclass_fields__) | {"failure"}
    assert set(req) <= known, set(req) - known
    cfg = train.parse_config(req)
    assert cfg.arch in train.SUPPORTED_ARCHES and cfg.steps == req["steps"] and cfg.trigger_word == "txcl"


def test_render_jobs_switch_adapters_per_job_on_flux(bases, dataset, tmp_path, events):
    result = train.run(request(bases, dataset, tmp_path / "run", "flux1"))
    from loraspec_worker import render_jobs

    out = render_jobs.run({
        "base": bases["flux1"], "out_dir": str(tmp_path / "jobs"), "steps": 2, "width": RES, "height": RES, "max_sequence_length": 32,
        "loras": [{"name": "mine", "path": result["path"]}],
        "jobs": [
            {"id": "base", "prompt": "a photo of txcl", "seed": 3, "adapters": []},
            {"id": "w1", "prompt": "a photo of txcl", "seed": 3, "adapters": [{"name": "mine", "weight": 1.0}]},
            {"id": "base-again", "prompt": "a photo of txcl", "seed": 3, "adapters": []},
        ],
    })
    assert [i["id"] for i in out["images"]] == ["base", "w1", "base-again"]
    px = {i["id"]: np.asarray(Image.open(i["path"]), dtype=np.float32) for i in out["images"]}
    assert np.abs(px["w1"] - px["base"]).max() > 0  # the LoRA changes the image
    np.testing.assert_array_equal(px["base"], px["base-again"])  # disabling it gives the base back


def test_sdxl_text_encoder_lora_is_saved_and_loads(bases, dataset, tmp_path, events):
    from diffusers import DiffusionPipeline
    from safetensors import safe_open

    result = train.run(request(bases, dataset, tmp_path, "sdxl", steps=2, train_text_encoder=True))
    with safe_open(result["path"], "pt") as f:
        keys = list(f.keys())
    assert "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight" in keys
    assert "text_encoder_2.text_model.encoder.layers.1.self_attn.out_proj.lora_B.weight" in keys
    pipe = DiffusionPipeline.from_pretrained(bases["sdxl"])
    pipe.load_lora_weights(result["path"], adapter_name="t")
    loaded = sum(1 for m in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2) for n, _ in m.named_parameters() if ".lora_A.t." in n or ".lora_B.t." in n)
    assert loaded == len(keys)


def test_sigint_stops_at_a_step_boundary_with_a_checkpoint_and_resume_continues(bases, dataset, tmp_path, events):
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    req = request(bases, dataset, out, steps=500)
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), ".."), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "loraspec_worker", "train", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    proc.stdin.write(json.dumps(req))
    proc.stdin.close()
    seen = []
    for line in proc.stdout:
        event = json.loads(line)
        seen.append(event)
        if event["type"] == "loss" and event["step"] == 2:
            proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert seen[-1]["type"] == "error" and seen[-1]["code"] == "E_CANCELLED"
    stopped_at = max(e["step"] for e in seen if e["type"] == "loss")
    ckpt = [e for e in seen if e["type"] == "checkpoint"]
    assert ckpt and ckpt[-1]["step"] == stopped_at and stopped_at < 500
    assert not (out / "lora.safetensors").exists()
    resumed = train.run({**req, "steps": stopped_at + 1, "resume_from": "latest"})
    assert resumed["startStep"] == stopped_at and resumed["steps"] == stopped_at + 1


def test_old_optimizer_states_are_pruned_and_a_run_folder_resumes_from_its_latest(bases, dataset, tmp_path, events):
    out = tmp_path / "run"
    train.run(request(bases, dataset, out, steps=5, save_every=1, debug={"stop_after_step": 4}))
    folders = sorted(os.listdir(out / "checkpoints"))
    assert folders == ["step-000001", "step-000002", "step-000003", "step-000004"]
    assert [os.path.exists(out / "checkpoints" / f / "state.pt") for f in folders] == [False, False, True, True]
    assert all((out / "checkpoints" / f / "lora.safetensors").exists() for f in folders)
    resumed = train.run(request(bases, dataset, out, steps=5, resume_from=str(out)))
    assert resumed["startStep"] == 4


def test_resuming_with_another_rank_is_a_shape_error(bases, dataset, tmp_path, events):
    out = tmp_path / "run"
    train.run(request(bases, dataset, out, steps=3, save_every=1, debug={"stop_after_step": 1}))
    with pytest.raises(WorkerError) as err:
        train.run(request(bases, dataset, out, steps=3, rank=8, resume_from="latest"))
    assert err.value.code == "E_LORA_SHAPE_MISMATCH"


def test_caption_extension_is_honoured(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    (folder / "a.caption").write_text("txcl in a hat")
    (folder / "a.txt").write_text("wrong file")
    assert train.read_dataset(str(folder), "txcl", ".caption") == [(str(folder / "a.png"), "txcl in a hat")]
    assert train.read_dataset(str(folder), "txcl", ".txt") == [(str(folder / "a.png"), "txcl, wrong file")]


def test_reg_images_and_unprefixed_captions_keep_their_captions(tmp_path):
    data, reg = tmp_path / "d", tmp_path / "reg"
    for folder, caption in ((data, "a cross on grass"), (reg, "a red circle on sky")):
        folder.mkdir()
        Image.new("RGB", (8, 8)).save(folder / "a.png")
        (folder / "a.txt").write_text(caption)
    base = {"arch": "sdxl", "base": "b", "dataset": str(data), "output_dir": str(tmp_path), "trigger_word": "txcl"}
    assert [c for _, c in train.training_items(train.parse_config(dev_request(**base, reg_dataset=str(reg))))] == [
        "txcl, a cross on grass", "a red circle on sky"]
    assert [c for _, c in train.training_items(train.parse_config(dev_request(**base, prefix_trigger=False)))] == ["a cross on grass"]


# Aspect-ratio buckets (train/buckets.py; unit tests in test_buckets.py): a portrait + landscape set per arch.
@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    write_noise_dataset(folder, 2, (60, 40), "a photo of txcl, portrait {i}", name="p{i}")  # (height, width)
    return write_noise_dataset(folder, 2, (40, 60), "a photo of txcl, landscape {i}", name="l{i}")


BUCKETS = [{"resolution": 48, "width": 32, "height": 48}, {"resolution": 48, "width": 48, "height": 32}, {"resolution": 48, "width": 48, "height": 48}]


@pytest.mark.parametrize("arch", ["sdxl", "flux1", "flux2-klein", "zimage", "qwen-image"])
def test_portrait_and_landscape_train_in_their_buckets(arch, bases, mixed, tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "_out", io.StringIO())
    cached = []

    def record(*args, **kwargs):
        cached.extend(buckets.cache_entries(*args, **kwargs))
        return cached

    monkeypatch.setattr(train_setup_module, "cache_entries", record)
    request = dev_request(arch=arch, base=bases[arch], dataset=mixed, output_dir=str(tmp_path), resolution=48, buckets=BUCKETS,
                         steps=3, batch_size=2, rank=4, alpha=4, learning_rate=1e-3, seed=7, max_sequence_length=32)
    result = train.run(request)
    assert result["steps"] == 3 and math.isfinite(result["finalLoss"])
    by_caption = {c["caption"].split(", ")[-1].split(" ")[0]: c for c in cached}
    portrait, landscape = by_caption["portrait"], by_caption["landscape"]
    assert portrait["shape"] == (32, 48) and landscape["shape"] == (48, 32)
    ph, pw = portrait["latents"].shape[-2:]
    lh, lw = landscape["latents"].shape[-2:]
    assert ph * 32 == pw * 48 and ph > pw  # the latent keeps the bucket's aspect
    assert (lh, lw) == (pw, ph)
    # SDXL micro-conditioning: original (h, w), crop top-left, target (h, w)
    assert portrait["extra"]["time_ids"] == [[60, 40, 0, 0, 48, 32]]
    assert landscape["extra"]["time_ids"] == [[40, 60, 0, 0, 32, 48]]
    log = json.dumps(protocol._out.getvalue())
    assert "32x48: 2" in log and "48x32: 2" in log
