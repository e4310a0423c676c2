"""bench/peer-aitoolkit.py's parts that run without ai-toolkit or a GPU: the steady s/step it reads
off ai-toolkit's stamped bar lines, and the jobs it fills in from the compiler's jobs file."""

import bench_script


def harness():
    return bench_script.load("peer-aitoolkit.py")


def bar_lines(step_times, total):
    """ai-toolkit's bar as the bench stamps it: the postfix redraw (previous count) then the update."""
    lines = [(0.0, f"peer-flux1:   0%|          | 0/{total} [00:00<?, ?it/s]")]
    for n, t in enumerate(step_times, start=1):
        lines.append((t - 0.01, f"peer-flux1:   {n - 1}/{total} [00:01<00:10,  1.20s/it, lr: 1.0e-04 loss: 4.1e-01]"))
        lines.append((t, f"peer-flux1:  {100 * n // total}%|#  | {n}/{total} [00:0{n % 10}<00:10,  1.{n % 10}0s/it, lr: 1.0e-04 loss: 4.1e-01]"))
    lines.append((step_times[-1] + 0.5, "Saved checkpoint to /x/peer-flux1.safetensors"))
    return lines


def test_steady_is_the_time_from_a_third_of_the_run_to_its_end_over_those_steps():
    h = harness()
    # 3 slow warm-up steps, then 0.8 s a step
    times = [5.0, 8.0, 10.0] + [10.0 + 0.8 * k for k in range(1, 58)]
    out = h.steady(bar_lines(times, 60), 60)
    assert out["steps_seen"] == 60
    assert out["window"] == [20, 60]
    assert abs(out["steady_s_per_step"] - 0.8) < 1e-9
    assert abs(out["median_s_per_step"] - 0.8) < 1e-9
    assert out["aitk_final_s_per_it"] == 1.0  # the last line's own rate, 1.0 s/it


def test_steady_reports_no_rate_when_the_run_stopped_before_three_steps():
    h = harness()
    out = h.steady(bar_lines([5.0, 8.0], 60), 60)
    assert out["steps_seen"] == 2 and "steady_s_per_step" not in out


def test_jobs_come_from_the_compiler_file_with_only_paths_and_steps_filled_in(tmp_path):
    h = harness()
    job = h.job_for("klein4b-fp8", tmp_path / "base", tmp_path / "data", tmp_path / "out", 15, tiny=False)
    proc = job["config"]["process"][0]
    assert proc["model"]["name_or_path"] == str(tmp_path / "base")
    assert proc["datasets"][0]["folder_path"] == str(tmp_path / "data")
    assert proc["training_folder"] == str(tmp_path / "out")
    assert (proc["train"]["steps"], proc["save"]["save_every"]) == (15, 15)
    assert proc["model"]["arch"] == "flux2_klein_4b" and proc["model"]["quantize"] is True and proc["model"]["qtype"] == "qfloat8"
    assert proc["train"]["optimizer"] == "adamw" and proc["train"]["gradient_checkpointing"] is False
    assert proc["datasets"][0]["resolution"] == [1024] and "device" not in proc
    flux = h.job_for("flux1", tmp_path, tmp_path, tmp_path, 60, tiny=False)["config"]["process"][0]
    assert flux["model"]["arch"] == "flux" and flux["model"]["quantize"] is False
    assert (flux["network"]["linear"], flux["network"]["linear_alpha"], flux["train"]["batch_size"]) == (16, 16, 1)


def test_a_run_whose_loss_went_nan_is_marked_invalid():
    """The H200 FLUX.1 row of 2026-12-02: ai-toolkit printed `loss is nan` and zeroed the loss on 59 of 60 steps."""
    mod = harness()
    lines = [(float(i), f"peer:  {i * 100 // 6}%|x| {i}/6 [00:0{i}<00:00,  1.00s/it, lr: 1.0e-04 loss: 0.000e+00]loss is nan") for i in range(1, 7)]
    out = mod.steady(lines, 6)
    assert out["nan_loss_steps"] == 6 and "not a timing" in out["invalid"]
    clean = [(t, text.replace("loss is nan", "")) for t, text in lines]
    assert "invalid" not in mod.steady(clean, 6)


def test_grad_report_names_the_non_finite_gradients_clip_grad_norm_would_turn_into_nan():
    """The H200 FLUX.1 log of 2026-12-02: step 1's loss was finite (1.526), every later one NaN, i.e. the
    first update went non-finite; the bench reports the gradients ai-toolkit clips on its first steps."""
    import json

    import torch

    mod = harness()
    a, b, c = (torch.zeros(2, 3, requires_grad=True), torch.zeros(4, requires_grad=True), torch.zeros(5, requires_grad=True))
    a.grad, b.grad = torch.full((2, 3), 2.0), torch.tensor([0.0, float("inf"), 1.0, 0.0])
    out = mod.grad_report([a, b, c])  # c has no gradient
    assert out["tensors"] == 2 and out["nonfinite"] == 1 and out["nonfinite_first"] == [(1, (4,))]
    assert out["max_abs_finite"] == 2.0 and out["norm"] == float("inf")
    assert (out["params"], out["params_nonfinite"]) == (3, 0)
    with torch.no_grad():
        c[2] = float("nan")  # what a NaN AdamW step leaves in a LoRA tensor
    assert mod.grad_report([a, b, c])["params_nonfinite"] == 1
    b.grad = torch.tensor([0.0, 3.0, 0.0, 4.0])
    clean = mod.grad_report([a, b])
    assert clean["nonfinite"] == 0 and abs(clean["norm"] - (24 + 25) ** 0.5) < 1e-5
    # as the CPU smoke log had it before the report got its own line: after the bar, mid-line
    line = (9.5, "peer-flux1:  33%|###| 1/3 [00:00<00:00,  3.64it/s, loss: 1.4e+00]" + mod.GRADS_TAG + "1: " + json.dumps(clean))
    assert mod.first_grads([(1.0, "peer: 1/60 [00:01<...]"), line]) == [json.loads(json.dumps(clean))]
    assert mod.steady([line], 3)["steps_seen"] == 1
