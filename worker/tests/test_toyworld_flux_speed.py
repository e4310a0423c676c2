"""The toy FLUX.1 base's speed levers (toyworld/flux_speed.py) on the CPU with tiny models: each
keeps the training maths of the committed loop, the throughput probe writes one row per config,
and bench/toy-flux-sweep.py passes the levers on and reports its progress as it goes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker.protocol import WorkerError  # noqa: E402
from toyworld import flux_speed, train_flux  # noqa: E402
import bench_script  # noqa: E402

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def dynamo_config_kept():
    """compile_models sets process-wide Dynamo options (static shapes, a larger cache) for the toy
    training process; a test leaves them as it found them (a later test's automatic-dynamic
    recompile, test_regional_compile's PGO check, failed after this file in one process)."""
    saved = torch._dynamo.config.get_config_copy()
    yield
    torch._dynamo.config.load_config(saved)


@pytest.fixture(scope="module")
def data():
    return flux_speed.synthetic_data(16)


def tiny_run(data, levers, monkeypatch, steps=4, lengths=(64, 32)):
    """Four steps of the transformer phase on a tiny model; every step's loss logged."""
    monkeypatch.setattr(train_flux, "LOSS_EVERY", 1)
    monkeypatch.setattr(train_flux, "LOG_EVERY", 1)
    models = train_flux.build_models(0, heads=2, double_layers=1, single_layers=1, vae_levels=2)
    models["vae"].register_to_config(shift_factor=0.0)
    images, captions, masks = data
    logged, seen = [], []
    report = train_flux.train_transformer(models, images, captions, device=CPU, steps=steps, seconds=600, batch=4, t5_lengths=lengths,
                                          masks=masks, object_weight=4.0, levers=levers, log=logged.append, on_step=seen.append)
    assert seen == list(range(1, steps + 1))
    return [float(line.split(" loss ")[1].split()[0]) for line in logged if line.startswith("transformer step")], report


def test_no_host_sync_and_fused_adam_keep_the_committed_losses(data, monkeypatch):
    """On the CPU both draw from the same host generator, so the losses match step for step: the
    losses read late (no_host_sync) are the ones read each step, and fused AdamW steps as foreach."""
    plain, plain_report = tiny_run(data, flux_speed.Levers(), monkeypatch)
    fast, fast_report = tiny_run(data, flux_speed.Levers(no_host_sync=True, fused_adam=True), monkeypatch)
    assert len(plain) == len(fast) == 4 and len(set(plain)) > 1  # the loss moves, so matching means something
    assert fast == pytest.approx(plain, abs=2e-4)
    assert fast_report["final_loss"] == pytest.approx(plain_report["final_loss"], abs=2e-4)
    assert fast_report["levers"] == {"compile": "off", "fused_adam": True, "no_host_sync": True}
    assert plain_report["images_per_second"] > 0 and plain_report["levers"]["compile"] == "off"


@pytest.mark.slow
@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_blocks_train_as_eager(data, monkeypatch):
    """--compile blocks (regional, one static graph per T5 length): the same losses as eager.
    (full and graphs compile whole modules through the same function; on the CPU graphs is full.)"""
    eager, _ = tiny_run(data, flux_speed.Levers(), monkeypatch, steps=2, lengths=(64,))
    compiled, report = tiny_run(data, flux_speed.Levers(compile="blocks"), monkeypatch, steps=2, lengths=(64,))
    assert compiled == pytest.approx(eager, rel=1e-3) and report["levers"]["compile"] == "blocks"


def test_lr_rule_scales_by_the_square_root_of_the_batch():
    assert flux_speed.scaled_lr(4e-4, 1024, "sqrt") == pytest.approx(8e-4)
    assert flux_speed.scaled_lr(4e-4, 1024, "fixed") == 4e-4
    assert flux_speed.scaled_lr(4e-4, flux_speed.REFERENCE_BATCH, "sqrt") == pytest.approx(4e-4)


def test_probe_configs_parse_and_unknown_tokens_are_usage_errors():
    levers, batch = flux_speed.parse_config("fast+compile+b1024")
    assert batch == 1024 and levers == flux_speed.Levers(compile="full", fused_adam=True, no_host_sync=True)
    assert flux_speed.parse_config("baseline") == (flux_speed.Levers(), flux_speed.REFERENCE_BATCH)
    for name in flux_speed.DEFAULT_CONFIGS.split(","):
        flux_speed.parse_config(name)
    with pytest.raises(WorkerError) as err:
        flux_speed.parse_config("fast+turbo")
    assert err.value.code == "E_USAGE" and "--configs" in str(err.value)


def test_probe_writes_one_row_per_config(tmp_path):
    rows = flux_speed.probe(["b2", "fast+b2"], str(tmp_path), steps=2, warmup=1, images=8, t5_lengths=(64,), device="cpu", log=lambda m: None)
    lines = [json.loads(ln) for ln in (tmp_path / "throughput.jsonl").read_text().splitlines()]
    assert lines == rows and [r["config"] for r in rows] == ["b2", "fast+b2"]
    for r in rows:
        assert "error" not in r, r
        assert r["batch"] == 2 and r["steps_timed"] == 2 and r["images_per_s"] > 0
    assert rows[1]["levers"]["no_host_sync"] and not rows[0]["levers"]["no_host_sync"]


def load_sweep():
    sweep = bench_script.load("toy-flux-sweep.py")
    return sweep


def test_sweep_passes_the_levers_to_train_base_and_runs_long_budgets():
    from toyworld.__main__ import build_parser

    sweep = load_sweep()
    args = sweep.parse_args(["--out", "o", "--variants", "vae2-objw", "--transformer-seconds", "1500",
                             "--train-args=--no-host-sync --fused-adam --compile full --batch 1024 --lr-rule sqrt"])
    assert args.deadline == args.vae_seconds + 1500 + sweep.SETUP_MARGIN
    cmd = sweep.command("vae2-objw", Path("f"), args)
    parsed = build_parser().parse_args(cmd[cmd.index("train-base") :])
    assert (parsed.compile, parsed.fused_adam, parsed.no_host_sync, parsed.batch, parsed.lr_rule) == ("full", True, True, 1024, "sqrt")
    assert parsed.transformer_seconds == 1500 and parsed.transformer_steps >= 1500 * 1000  # time governs, not the step cap
    assert parsed.object_weight == 4 and parsed.vae_downscale == 2


def test_sweep_progress_names_each_variants_state_and_last_line(tmp_path):
    sweep = load_sweep()
    (tmp_path / "a.log").write_text("rendered 60000 base-world images in 9s\ntransformer step 400 loss 0.4123 (31s)\n 50%|##| 1/2 [00:01<00:01, 1.00it/s]\n{\n  \"arch\": \"flux1\"\n}\n")
    running, finished = SimpleNamespace(poll=lambda: None, returncode=None), SimpleNamespace(poll=lambda: 0, returncode=0)
    sweep.write_progress(tmp_path, {"a": (running, None), "b": (finished, None)}, 0.0, 1475)
    lines = (tmp_path / "progress.txt").read_text().splitlines()
    assert lines[0].startswith("running: ") and "of 1475 s" in lines[0]
    assert lines[1] == "a [running] transformer step 400 loss 0.4123 (31s)" and lines[2] == "b [exit 0] (no log yet)"
    sweep.write_progress(tmp_path, {"b": (finished, None)}, 0.0, 1475)
    assert (tmp_path / "progress.txt").read_text().startswith("done: ") and not (tmp_path / "progress.txt.tmp").exists()


def test_flux1_loss_builds_the_image_ids_and_sigma_table_once():
    """The trainer's Flux1.loss no longer copies host tensors to the device each step (each copy
    waits for the GPU): the image ids are diffusers' own, built once per token grid, and the
    sigma table is moved once."""
    from diffusers import FluxPipeline

    from loraspec_worker.train import Flux1
    from loraspec_worker.train.dev_request import dev_config

    models = train_flux.build_models(0, heads=2, double_layers=1, single_layers=1)
    flux = Flux1(train_flux.make_pipeline(models), dev_config(arch="flux1", guidance_scale=train_flux.GUIDANCE), CPU, torch.float32)
    ids = flux.image_ids(4, 6, CPU)
    assert torch.equal(ids, FluxPipeline._prepare_latent_image_ids(3, 4, 6, CPU, torch.float32))
    assert flux.image_ids(4, 6, CPU) is ids and flux.image_ids(6, 4, CPU).shape == (24, 3)
    sigmas = flux.noise_scheduler.sigmas
    flux.sample_sigmas(2, torch.Generator().manual_seed(0), CPU)
    assert flux.noise_scheduler.sigmas is sigmas  # already on the device: nothing copied


def test_stack_refuses_a_malformed_targets_flag_as_a_usage_error(capsys):
    """`python -m toyworld stack --targets bogus` exits 2 with the flag named (it raised NameError: no parser in main)."""
    import pytest

    from toyworld.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["stack", "--out", "/tmp/unused", "--targets", "bogus"])
    assert e.value.code == 2 and "--targets bogus" in capsys.readouterr().err
