"""bench/peer-kohya.py's parts that run without sd-scripts or a GPU: the compiled configs it fills in (paths,
steps, --tiny's 64 px), the launch argv (accelerate launch, this bench file as the launched script), and what
it reads off Kohya's stamped log (steady s/step from tqdm's bar, module counts, avr_loss)."""

import json
import tomllib
from pathlib import Path

import bench_script

ROOT = Path(__file__).resolve().parents[2]


def harness():
    return bench_script.load("peer-kohya.py")


def test_the_compiled_flux_config_gets_the_device_paths_and_steps_and_nothing_else(tmp_path):
    h = harness()
    launch, script, script_args = h.job_files("flux1", tmp_path / "w", "/opt/sd-scripts", 40, tiny=False)
    args = tomllib.loads((tmp_path / "w" / "config-flux1" / "args.toml").read_text())
    model = args["model_arguments"]
    assert model["pretrained_model_name_or_path"] == str(tmp_path / "w" / "base" / "flux1-dev.safetensors")
    assert (model["ae"], model["t5xxl"]) == (str(tmp_path / "w" / "base" / "ae.safetensors"), str(tmp_path / "w" / "base" / "t5xxl_fp16.safetensors"))
    assert model["tokenizer_cache_dir"] == str(tmp_path / "w" / "tokenizers")
    assert (args["training_arguments"]["max_train_steps"], args["saving_arguments"]["save_every_n_steps"]) == (40, 40)
    assert args["training_arguments"]["sdpa"] is True and "gradient_checkpointing" not in args["training_arguments"]
    assert (args["network_arguments"]["network_module"], args["network_arguments"]["network_dim"]) == ("networks.lora_flux", 16)
    assert "network_args" not in args["network_arguments"]  # all-linear: Kohya's own module set
    assert args["dataset_arguments"]["dataset_config"] == str(tmp_path / "w" / "config-flux1" / "dataset.toml")
    data = tomllib.loads((tmp_path / "w" / "config-flux1" / "dataset.toml").read_text())
    assert data["datasets"][0]["resolution"] == 1024 and data["datasets"][0]["subsets"][0]["image_dir"] == str(tmp_path / "w" / "dataset")
    assert launch[1:4] == ["-m", "accelerate.commands.accelerate_cli", "launch"] and "--mixed_precision" in launch
    assert script == "/opt/sd-scripts/flux_train_network.py"
    assert script_args == ["--config_file", str(tmp_path / "w" / "config-flux1" / "args.toml")]
    assert "/BASE" not in json.dumps(args) and "/SDSCRIPTS" not in " ".join(launch)


def test_tiny_trains_at_64_px_and_sdxl_loads_the_diffusers_folder(tmp_path):
    h = harness()
    h.job_files("sdxl", tmp_path, "/opt/sd-scripts", 2, tiny=True)
    args = tomllib.loads((tmp_path / "config-sdxl" / "args.toml").read_text())
    assert args["model_arguments"]["pretrained_model_name_or_path"] == str(tmp_path / "base")
    assert tomllib.loads((tmp_path / "config-sdxl" / "dataset.toml").read_text())["datasets"][0]["resolution"] == 64


def kohya_bar(step_times, total):
    """Kohya's tqdm bar as the bench stamps it: the update, then the postfix redraw with avr_loss."""
    lines = [(0.0, f"steps:   0%|          | 0/{total} [00:00<?, ?it/s]")]
    for n, t in enumerate(step_times, start=1):
        lines.append((t, f"steps:  {100 * n // total}%|#  | {n}/{total} [00:05<00:50,  1.19s/it]"))
        lines.append((t + 0.001, f"steps:  {100 * n // total}%|#  | {n}/{total} [00:05<00:50,  1.19s/it, avr_loss=1.{n % 10}]"))
    return lines


def test_steady_comes_off_kohyas_bar_with_its_epoch_pauses_inside_the_window():
    h = harness()
    # Kohya's loader respawns its workers each epoch (4 steps): every 4th step is 1.0 s slower
    times, t = [], 5.0
    for n in range(1, 61):
        t += 1.0 + (1.0 if n % 4 == 1 else 0.0)
        times.append(t)
    # another bar with the same total before the run (diffusers' component loading shows N/7; a run of 7 steps)
    other = [(0.5, "Loading pipeline components...: 100%|##| 60/60 [00:00<00:00,  9.99it/s]")]
    out = h.AITK.steady(h.bar_lines(other + kohya_bar(times, 60)), 60)
    assert out["window"] == [20, 60] and out["steps_seen"] == 60
    assert abs(out["steady_s_per_step"] - 1.25) < 1e-9  # 40 steps, 10 epoch pauses
    assert out["median_s_per_step"] == 1.0


def test_losses_and_module_counts_are_read_and_a_nan_loss_counted():
    h = harness()
    lines = [(1.0, "steps: 2%| | 1/60 [00:01<00:59, 1.0s/it, avr_loss=3.46]"), (2.0, "steps: 3%| | 2/60 [00:02, avr_loss=nan]")]
    assert h.loss_report(lines) == {"avr_loss_first": "3.46", "avr_loss_last": "nan", "avr_loss_nan": 1}
    text = "INFO create LoRA for Text Encoder 1: 72 modules. INFO create LoRA for FLUX all blocks: 304 modules."
    assert [f"{m.group(1)}: {m.group(2)}" for m in h.MODULES_RE.finditer(text)] == ["Text Encoder 1: 72", "FLUX all blocks: 304"]


def test_the_child_argv_splits_at_the_double_dash(monkeypatch):
    h = harness()
    seen = {}
    monkeypatch.setattr(h, "child", lambda script, peak, tiny, no_cudnn, rest: seen.update(script=script, peak=peak, tiny=tiny, no_cudnn=no_cudnn, rest=rest))
    assert h.main(["--child", "/s/flux_train_network.py", "/w/peak.json", "--no-cudnn-sdpa", "--", "--config_file", "/c/args.toml"]) == 0
    assert seen == {"script": "/s/flux_train_network.py", "peak": "/w/peak.json", "tiny": False, "no_cudnn": True, "rest": ["--config_file", "/c/args.toml"]}


def test_the_committed_jobs_file_is_the_compilers_pin_and_contract():
    jobs = json.loads((ROOT / "bench" / "data" / "peer-kohya-jobs.json").read_text())
    assert jobs["trainer"].startswith("kohya-ss/sd-scripts v0.10.1 (ae72efb") and jobs["steps"] == 60
    assert sorted(jobs["jobs"]) == ["flux1", "sdxl"]
    for job in jobs["jobs"].values():
        args = tomllib.loads(job["argsToml"])
        assert args["optimizer_arguments"]["optimizer_type"] == "AdamW" and args["optimizer_arguments"]["learning_rate"] == 1e-4
        assert args["training_arguments"]["cache_latents"] and args["training_arguments"]["cache_text_encoder_outputs"]
        assert (args["network_arguments"]["network_dim"], args["network_arguments"]["network_alpha"]) == (16, 16)
