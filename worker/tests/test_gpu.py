"""GPU-only: the trainer's real path on CUDA with a bf16 base and fp32 LoRA (tiny bases, seconds)."""

from __future__ import annotations

import io
import json
import math
import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol, tiny_base, train  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402
from tiny_runs import tiny_run  # noqa: E402
from loraspec_worker.train.dev_request import dev_config, dev_request  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("arch", ["sdxl", "flux1", "flux2-klein", "zimage", "qwen-image"])
def test_bf16_training_on_cuda(arch, tmp_path, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    base = tiny_base.make_tiny_base(arch, str(tmp_path / "base"))
    data = write_noise_dataset(tmp_path / "data", 2, (64, 64))
    from loraspec_worker.protocol import WorkerError

    request = dev_request(
        arch=arch, base=base, dataset=str(data), output_dir=str(tmp_path / "out"), resolution=64,
        steps=4, rank=4, alpha=4, precision="bf16", gradient_checkpointing=True, save_every=2,
        max_sequence_length=32, learning_rate=1e-3,
    )
    try:
        result = train.run(request)
    except WorkerError as e:
        pytest.fail(f"{e.code}: {e.message}")
    losses = [json.loads(l) for l in buf.getvalue().splitlines() if '"loss"' in l]
    assert len(losses) == 4 and all(l["loss"] is not None and math.isfinite(l["loss"]) for l in losses)
    # fused AdamW on CUDA keeps the scheduler's lr as a tensor: the event still carries a number
    assert all(isinstance(l["lr"], float) for l in losses), [l["lr"] for l in losses]
    assert result["device"] == "cuda" and result["peakMemoryGiB"] > 0
    from safetensors.torch import load_file

    tensors = load_file(result["path"])
    assert all(t.dtype == torch.float32 for t in tensors.values())  # fp32 LoRA over a bf16 base


def test_sdxl_cuda_graph_replays_the_eager_loss_curve(tmp_path, monkeypatch):
    graphed, g_losses, g_events = tiny_run("sdxl", tmp_path, "graph", monkeypatch, gradient_checkpointing=False, cuda_graphs=True, channels_last=True)
    eager, e_losses, _ = tiny_run("sdxl", tmp_path, "eager", monkeypatch, gradient_checkpointing=False, cuda_graphs=False)
    assert any("CUDA graph captured" in e.get("message", "") for e in g_events if e["type"] == "log"), g_events
    assert not any(e.get("code") == "W_CUDA_GRAPH_FALLBACK" for e in g_events), g_events
    assert len(g_losses) == len(e_losses) == 8
    np.testing.assert_allclose(g_losses, e_losses, rtol=2e-2)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager-blocks", "compile-fp8-gemms"])
def test_flux_cuda_graph_replays_the_plain_loss_curve(compiled, tmp_path, monkeypatch):
    """FLUX.1's whole step as one CUDA graph (its loss split into draw / loss_from, 770970c): captured without the
    fall-back's warning, over plain blocks and over compiled blocks with fp8 GEMMs (the bench's row 45), and the same
    losses as the plain path of the same levers."""
    over = {"gradient_checkpointing": False, "compile": compiled, "fp8_matmul": compiled}
    graphed, g_losses, g_events = tiny_run("flux1", tmp_path, "graph", monkeypatch, cuda_graphs=True, **over)
    plain, p_losses, _ = tiny_run("flux1", tmp_path, "plain", monkeypatch, cuda_graphs=False, **over)
    assert any("CUDA graph captured" in e.get("message", "") for e in g_events if e["type"] == "log"), g_events
    assert not any(e.get("code") == "W_CUDA_GRAPH_FALLBACK" for e in g_events), g_events
    assert len(g_losses) == len(p_losses) == 8
    np.testing.assert_allclose(g_losses, p_losses, rtol=2e-2)


@pytest.mark.parametrize("graphs", [True, False], ids=["cuda-graph", "eager"])
def test_a_deferred_loss_read_on_cuda_reads_each_steps_own_loss(graphs, tmp_path, monkeypatch):
    """debug.defer_loss_read (train/loss_read.py): the pinned copy of each step's loss, read after the next step is
    dispatched (for the CUDA graph, after the next replay overwrote its static loss), is that step's loss: the same
    losses and learning rates as reading each at once, and the same LoRA."""
    over = {"gradient_checkpointing": False, "cuda_graphs": graphs, "channels_last": graphs, "save_every": 3, "lr_scheduler": "cosine", "warmup_steps": 2}
    now, now_losses, now_events = tiny_run("sdxl", tmp_path, "now", monkeypatch, **over)
    late, late_losses, late_events = tiny_run("sdxl", tmp_path, "late", monkeypatch, debug={"defer_loss_read": True}, **over)
    assert not any(e.get("code") == "W_CUDA_GRAPH_FALLBACK" for e in late_events), late_events
    # the same run twice on a GPU may differ in the last bits (non-deterministic kernels); a loss read a step off
    # would differ by the step's change (these tiny runs' losses move by far more than 0.1% a step)
    assert len(late_losses) == 8
    np.testing.assert_allclose(late_losses, now_losses, rtol=1e-3)
    lrs = lambda evs: [e["lr"] for e in evs if e["type"] == "loss"]  # noqa: E731
    assert lrs(late_events) == pytest.approx(lrs(now_events), rel=1e-6)
    from safetensors.torch import load_file

    a, b = load_file(now["path"]), load_file(late["path"])
    assert all(torch.allclose(a[k], b[k], rtol=1e-2, atol=1e-5) for k in a)


def test_flux_fp8_base_with_compile_trains(tmp_path, monkeypatch):
    result, losses, events = tiny_run("flux1", tmp_path, "fp8", monkeypatch, gradient_checkpointing=True, quantize="fp8", compile=True)
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert any("fp8 base" in e.get("message", "") for e in events if e["type"] == "log")


def test_flux_fp8_gemms_follow_the_bf16_loss_curve(tmp_path, monkeypatch):
    fp8, f_losses, f_events = tiny_run("flux1", tmp_path, "fp8mm", monkeypatch, compile=True, fp8_matmul=True)
    bf16, b_losses, _ = tiny_run("flux1", tmp_path, "bf16", monkeypatch, compile=True, fp8_matmul=False)
    assert any("fp8 GEMMs for the forward and the input gradient" in e.get("message", "") for e in f_events if e["type"] == "log"), f_events
    assert not any(e["type"] == "warning" for e in f_events), f_events
    np.testing.assert_allclose(f_losses, b_losses, rtol=5e-2)


def test_the_row_wise_fp8_gemm_probe_agrees_with_the_card():
    from loraspec_worker import speed

    if torch.cuda.get_device_capability(0) >= (9, 0) and torch.cuda.get_device_capability(0) < (10, 0):
        assert speed.rowwise_fp8_gemm_error(0) is None  # Hopper: the fp8 GEMM tests above ran it
    else:  # elsewhere either outcome is possible; the lever follows it
        cfg = dev_config(arch="flux1", steps=1000, compile=True, fp8_matmul=True)
        levers = speed.refuse_levers(cfg, torch.device("cuda"), object(), train.config.TABLE["refusals"])
        assert levers["fp8_matmul"] is (speed.rowwise_fp8_gemm_error(0) is None and torch.cuda.get_device_capability(0) >= (8, 9))


@pytest.mark.parametrize("kind", ["dora", "lokr", "loha"])
def test_network_kinds_train_in_bf16_on_cuda(kind, tmp_path, monkeypatch):
    result, losses, _ = tiny_run("flux1", tmp_path, kind, monkeypatch, steps=4, network_type=kind)
    assert len(losses) == 4 and all(x is not None and math.isfinite(x) for x in losses)
    from safetensors.torch import load_file

    tensors = load_file(result["path"])
    assert tensors and all(torch.isfinite(t).all() for t in tensors.values())


@pytest.mark.parametrize("kind", ["dora", "lokr", "loha"])
def test_network_kinds_replay_in_the_sdxl_cuda_graph(kind, tmp_path, monkeypatch):
    """core plans the CUDA graph for SDXL whatever network.type is: each kind must capture and
    follow its eager loss curve (or the plan must turn the graph off for it)."""
    _, g_losses, g_events = tiny_run("sdxl", tmp_path, "graph", monkeypatch, gradient_checkpointing=False, cuda_graphs=True, channels_last=True, network_type=kind)
    _, e_losses, _ = tiny_run("sdxl", tmp_path, "eager", monkeypatch, gradient_checkpointing=False, cuda_graphs=False, network_type=kind)
    assert any("CUDA graph captured" in e.get("message", "") for e in g_events if e["type"] == "log"), g_events
    np.testing.assert_allclose(g_losses, e_losses, rtol=2e-2)


REGULARISERS = {"noise_offset": 0.05, "min_snr_gamma": 5.0, "caption_dropout": 0.3, "ema_decay": 0.9}


def test_sdxl_cuda_graph_with_the_regularisers_replays_the_eager_loss_curve(tmp_path, monkeypatch):
    """Noise offset (in draw), min-SNR (in loss_from), caption dropout (cached empty caption copied in)
    and EMA (after the replayed step) keep the whole-step graph and its eager twin's curve."""
    graphed, g_losses, g_events = tiny_run("sdxl", tmp_path, "graph-reg", monkeypatch, gradient_checkpointing=False, cuda_graphs=True,
                                            channels_last=True, **REGULARISERS)
    eager, e_losses, _ = tiny_run("sdxl", tmp_path, "eager-reg", monkeypatch, gradient_checkpointing=False, cuda_graphs=False, **REGULARISERS)
    assert any("CUDA graph captured" in e.get("message", "") for e in g_events if e["type"] == "log"), g_events
    assert not any(e.get("code") == "W_CUDA_GRAPH_FALLBACK" for e in g_events), g_events
    np.testing.assert_allclose(g_losses, e_losses, rtol=2e-2)


@pytest.mark.parametrize("sampling", ["uniform", "sigmoid", "logit_normal", "shift"])
def test_flux_timestep_sampling_and_ema_train_on_cuda(sampling, tmp_path, monkeypatch):
    result, losses, _ = tiny_run("flux1", tmp_path, sampling, monkeypatch, timestep_sampling=sampling, ema_decay=0.9, caption_dropout=0.2)
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
def test_flux_selective_checkpointing_with_compile_follows_the_eager_loss_curve(tmp_path, monkeypatch):
    """Issue 22: the checkpoint inside each compiled block (train/selective_ckpt.py) keeps its policy under
    torch.compile and trains what eager full checkpointing trains."""
    sel, s_losses, s_events = tiny_run("flux1", tmp_path, "sel", monkeypatch, gradient_checkpointing=True, checkpointing_mode="selective", compile=True)
    full, f_losses, _ = tiny_run("flux1", tmp_path, "full", monkeypatch, gradient_checkpointing=True, checkpointing_mode="full", compile=False)
    assert any("selective checkpointing on" in e.get("message", "") for e in s_events if e["type"] == "log"), s_events
    assert not any(e["type"] == "warning" for e in s_events), s_events
    np.testing.assert_allclose(s_losses, f_losses, rtol=2e-2)


def test_a_second_compiled_run_reuses_the_compile_cache(tmp_path):
    """Issue 22: the first run saves torch.compile's artifacts into compile_cache_dir, the second loads
    them and its warm-up is shorter. Each run is the worker's own `train` command in a fresh process,
    as `loraspec train` runs it (in one process, earlier compiled tests warm the in-memory caches)."""
    import subprocess
    import sys

    base = tiny_base.make_tiny_base("flux1", str(tmp_path / "base"))
    data = write_noise_dataset(tmp_path / "data", 2, (64, 64))
    cache = str(tmp_path / "cache" / "compile")
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    runs = {}
    for name in ("cold", "warm"):
        request = dev_request(arch="flux1", base=base, dataset=str(data), output_dir=str(tmp_path / name), resolution=64, steps=8, rank=4,
                              alpha=4, precision="bf16", max_sequence_length=32, learning_rate=1e-3, compile=True, compile_cache_dir=cache)
        req = tmp_path / f"{name}.json"
        req.write_text(json.dumps(request))
        out = subprocess.run([sys.executable, "-m", "loraspec_worker", "train", str(req)], capture_output=True, text=True, env=env, timeout=600)
        events = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
        done = [e for e in events if e["type"] == "done"]
        assert done, (out.returncode, out.stderr[-3000:], events[-5:])
        runs[name] = (done[0]["result"], events)
    (cold, c_events), (warm, w_events) = runs["cold"], runs["warm"]
    assert any("compile cache saved" in e.get("message", "") for e in c_events if e["type"] == "log"), c_events
    assert any("compile cache loaded" in e.get("message", "") for e in w_events if e["type"] == "log"), w_events
    assert not any(e.get("code") == "W_COMPILE_CACHE_IGNORED" for e in w_events)
    print("compile warm-up cold / warm (s):", cold["timing"]["warmup_s"], warm["timing"]["warmup_s"])
    assert warm["timing"]["warmup_s"] < cold["timing"]["warmup_s"], (cold["timing"], warm["timing"])
    # AOTAutograd's cache is used, never bypassed (compile_cache.py: the fp8 base's autograd.Function and the SAC policy made torch skip it)
    line = next(e["message"] for e in w_events if e["type"] == "log" and e["message"].startswith("torch.compile in this run"))
    assert "/ 0 bypass" in line and "AOTAutograd 0 hit" not in line, line
    # the warm run leaves the artifacts file as it loaded it exactly when every graph hit (compile_cache.served_every_graph)
    every_hit = re.search(r"FX graphs \d+ hit / 0 miss, AOTAutograd \d+ hit / 0 miss", line) is not None
    left = any("left as it was" in e.get("message", "") for e in w_events if e["type"] == "log")
    print("warm run:", line.split("; compile cache: ")[-1].split(";")[0], "| file left as it was:", left)
    assert left == every_hit, (line, [e.get("message") for e in w_events if "compile cache" in e.get("message", "")])


@pytest.mark.parametrize("arch", ["sdxl", "flux1", "flux2-klein", "zimage", "qwen-image"])
def test_bucketed_bf16_training_at_full_size_bucket_shapes(arch, tmp_path, monkeypatch):
    """Aspect buckets on CUDA at SDXL-size shapes (832x1216 and its transpose, from core's 1024 set):
    batches of 2 from one bucket, non-square packing and position ids, finite bf16 losses."""
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    base = tiny_base.make_tiny_base(arch, str(tmp_path / "base"))
    data = tmp_path / "data"
    write_noise_dataset(data, 2, (1216, 832), "a photo of txcl, portrait {i}", name="p{i}")
    write_noise_dataset(data, 2, (832, 1216), "a photo of txcl, landscape {i}", name="l{i}")
    buckets = [{"resolution": 1024, "width": w, "height": h} for w, h in ((832, 1216), (1024, 1024), (1216, 832))]
    result = train.run(dev_request(arch=arch, base=base, dataset=str(data), output_dir=str(tmp_path / "out"), resolution=1024, buckets=buckets,
                                   steps=4, batch_size=2, rank=4, alpha=4, precision="bf16", gradient_checkpointing=True,
                                   max_sequence_length=32, learning_rate=1e-3))
    events = [json.loads(l) for l in buf.getvalue().splitlines()]
    losses = [e["loss"] for e in events if e["type"] == "loss"]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert any("832x1216: 2" in e.get("message", "") and "1216x832: 2" in e.get("message", "") for e in events if e["type"] == "log")
    assert result["device"] == "cuda"


def test_sdxl_cuda_graph_background_saves_hold_their_step_and_resume_on_the_same_curve(tmp_path, monkeypatch):
    """Periodic saves written on the writer thread (train/background_save.py) with the CUDA graph: the
    save of step 2 is in flight when step 4 captures (the capture waits for it); each checkpoint holds
    the parameters of its step; state.pt keeps the capturable AdamW's lr on the GPU and its
    per-parameter state on the host; a run cut at step 6 resumes (and captures at step 10) onto the
    straight run's losses."""
    from safetensors.torch import load_file

    from loraspec_worker.train import checkpoint, loop

    captured, save = {}, loop.TrainState.save

    def capture(state):
        captured[(state.cfg.output_dir, state.step)] = {
            k: v.detach().cpu().clone() for attr, m in zip(state.lora_configs, state.trainable) for k, v in checkpoint.live_lora_tensors(m, attr).items()}
        save(state)

    monkeypatch.setattr(loop.TrainState, "save", capture)
    over = dict(steps=12, gradient_checkpointing=False, cuda_graphs=True, channels_last=True, save_every=2)
    _, s_losses, s_events = tiny_run("sdxl", tmp_path, "straight", monkeypatch, **over)
    tiny_run("sdxl", tmp_path, "cut", monkeypatch, debug={"stop_after_step": 6}, **over)
    # read before the resumed run saves steps 8 and 10: only the newest KEEP_STATES checkpoints keep a state.pt
    state = torch.load(tmp_path / "cut" / "checkpoints" / "step-000006" / "state.pt", weights_only=False)
    resumed, r_losses, r_events = tiny_run("sdxl", tmp_path, "cut", monkeypatch, resume_from="latest", **over)
    for run, events in (("straight", s_events), ("resumed", r_events)):
        # on failure, say which run and what it logged (the first H200 failure, 2026-12-03, kept no events)
        said = [(e["type"], e.get("code"), e.get("message", "")[:200]) for e in events if e["type"] in ("log", "warning", "settings")]
        assert any("CUDA graph captured" in e.get("message", "") for e in events if e["type"] == "log"), (run, said)
        assert not any(e.get("code") == "W_CUDA_GRAPH_FALLBACK" for e in events), (run, said)
    for (out, step), tensors in captured.items():
        saved = load_file(os.path.join(out, "checkpoints", f"step-{step:06d}", "lora.safetensors"))
        assert all(torch.equal(saved[k], tensors[k]) for k in tensors), (out, step)
    lr = state["optimizer"]["param_groups"][0]["lr"]
    assert isinstance(lr, torch.Tensor) and lr.is_cuda
    assert not any(v.is_cuda for s in state["optimizer"]["state"].values() for v in s.values())
    assert resumed["startStep"] == 6
    np.testing.assert_allclose(r_losses, s_losses[6:], rtol=2e-2)


def test_sdxl_samples_replay_a_cuda_graph_with_the_eager_pixels_and_the_updated_lora(tmp_path, monkeypatch):
    """In-training samples of SDXL replay the UNet forward from one CUDA graph (train/sample_graph.py),
    captured at the first sample (step 4, while that step's checkpoint is being written: the capture
    waits for it): the PNGs are the eager ones within 1/255, the step-8 ones show the LoRA the optimizer
    updated in place since step 4, and the loss curve is the eager-sampling run's."""
    from PIL import Image

    from loraspec_worker.train import sample_graph

    samples = {"every": 4, "prompts": ["a photo of txcl"], "seeds": [42, 7], "steps": 4, "guidance_scale": 3.0, "first": False, "width": 64, "height": 64}
    over = dict(samples=samples, gradient_checkpointing=False, cuda_graphs=True, channels_last=True, save_every=4, sample_merge="buffers")  # core's SDXL choice
    _, g_losses, g_events = tiny_run("sdxl", tmp_path, "graph", monkeypatch, **over)
    monkeypatch.setattr(sample_graph, "make", lambda arch, device: None)  # eager samples
    _, e_losses, e_events = tiny_run("sdxl", tmp_path, "eager", monkeypatch, **over)
    logs = [e.get("message", "") for e in g_events if e["type"] == "log"]
    assert sum("sample graph captured" in m for m in logs) == 1, logs
    assert any("16 UNet graph replays so far" in m for m in logs), logs  # 2 seeds x 4 steps x 2 renders
    assert not any("sample graph captured" in e.get("message", "") for e in e_events)
    assert not any(e.get("code") in (sample_graph.WARNING, "W_CUDA_GRAPH_FALLBACK") for e in g_events), g_events
    names = sorted(os.listdir(tmp_path / "graph" / "samples"))
    assert names == sorted(os.listdir(tmp_path / "eager" / "samples")) and len(names) == 4

    def pixels(name, run):
        with Image.open(tmp_path / run / "samples" / name) as im:
            return np.asarray(im.convert("RGB")).astype(np.int16)

    for name in names:
        assert np.abs(pixels(name, "graph") - pixels(name, "eager")).max() <= 1, name
    for seed in (42, 7):
        assert np.abs(pixels(f"step-000004-p0-s{seed}.png", "graph") - pixels(f"step-000008-p0-s{seed}.png", "graph")).max() > 1
    np.testing.assert_allclose(g_losses, e_losses, rtol=1e-3)


def test_fa4_trains_like_torchs_kernel(tmp_path, monkeypatch):
    """FlashAttention-4 (train/attention.py) on a tiny FLUX.1 with FLUX's head dim 128: torch's kernel first (the
    activation is process-wide), then FA4; the same loss curve within bf16 noise, logged, no fallback warning."""
    pytest.importorskip("flash_attn.cute", reason="needs flash-attn-4 (worker/requirements-fa4.txt)")
    from loraspec_worker.train import attention

    blockers = attention.device_blockers(torch.device("cuda"))
    if blockers:
        pytest.skip("; ".join(blockers))
    tiny_base.save_pipeline(tiny_base.build_flux1(0, attention_head_dim=128), str(tmp_path / "base-flux1"))
    # in-training samples too: the pipeline's transformer (and any VAE attention the flash kernel takes) under FA4
    samples = {"every": 4, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 4, "guidance_scale": 3.5, "first": False, "width": 64, "height": 64}
    _, s_losses, s_events = tiny_run("flux1", tmp_path, "sdpa", monkeypatch, attention="sdpa", samples=samples)
    try:
        _, f_losses, f_events = tiny_run("flux1", tmp_path, "fa4", monkeypatch, attention="fa4", samples=samples)
    finally:
        attention.deactivate()
    assert len([e for e in f_events if e["type"] == "sample"]) == len([e for e in s_events if e["type"] == "sample"]) == 2
    logs = [e["message"] for e in f_events if e["type"] == "log"]
    assert any(m.startswith("attention: FlashAttention-4") and "head dim 128" in m for m in logs), logs
    assert not any(e.get("code") == "W_ATTENTION_FALLBACK" for e in f_events), f_events
    [settings] = [e for e in f_events if e["type"] == "settings"]
    assert settings["applied"]["attention"] == "fa4"
    assert not any("FlashAttention-4" in e.get("message", "") for e in s_events)
    assert len(f_losses) == len(s_losses) == 8
    np.testing.assert_allclose(f_losses, s_losses, rtol=2e-2)
