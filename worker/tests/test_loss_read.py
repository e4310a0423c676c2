"""Each step's loss read one step late (train/loss_read.py, train/steps.py step_deferred; debug.defer_loss_read):
the run it trains is the run that reads each loss at once. On the CPU (the copy is synchronous there): the same
losses, learning rates and LoRA bit for bit, every loss read before a save, a sample and the end, a non-finite
loss stopping the run with the same error and no checkpoint of its step; the learning rate read without a host
sync equals the scheduler's. The CUDA path (pinned copy + event, the graph's static loss) is tests/test_gpu.py's."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker.protocol import WorkerError  # noqa: E402
from loraspec_worker.train import loss_read  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tiny_runs import tiny_run  # noqa: E402

SAMPLES = {"every": 3, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 5.0, "first": False, "width": 64, "height": 64}


def run(tmp_path, monkeypatch, name, defer, **over):
    debug = {**over.pop("debug", {}), **({"defer_loss_read": True} if defer else {})}
    return tiny_run("sdxl", tmp_path, name, monkeypatch, precision="fp32", lr_scheduler="cosine", warmup_steps=2, debug=debug, **over)


def stream(events):
    """The loss, sample and progress events in order (their values; a checkpoint's write is on its own thread)."""
    keep = []
    for e in events:
        if e["type"] == "loss":
            keep.append(("loss", e["step"], e["loss"], e["lr"], e["avgLoss"]))
        elif e["type"] == "sample":
            keep.append(("sample", e["step"]))
        elif e["type"] == "progress" and e.get("task") == "train":
            keep.append(("progress", e["current"]))
    return keep


def test_a_deferred_read_trains_the_same_run_with_the_same_events_in_order(tmp_path, monkeypatch):
    now, now_losses, now_events = run(tmp_path, monkeypatch, "now", False, save_every=3, samples=SAMPLES)
    late, late_losses, late_events = run(tmp_path, monkeypatch, "late", True, save_every=3, samples=SAMPLES)
    assert len(now_losses) == 8 and late_losses == now_losses
    assert stream(late_events) == stream(now_events)  # a sample at step 3 comes after step 3's loss, as it did
    a, b = load_file(now["path"]), load_file(late["path"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = lambda evs: sorted(e["step"] for e in evs if e["type"] == "checkpoint")  # noqa: E731
    assert steps(late_events) == steps(now_events) == [3, 6, 8]  # the periodic saves and the final one
    # each checkpoint holds the losses up to its step (they were read before it was taken)
    for step in (3, 6):
        held = torch.load(os.path.join(tmp_path, "late", "checkpoints", f"step-{step:06d}", "state.pt"), weights_only=False)["losses"]
        assert held == now_losses[:step]


def test_a_non_finite_loss_stops_a_deferred_run_with_the_same_error_and_no_checkpoint_of_its_step(tmp_path, monkeypatch):
    for name, defer in (("now", False), ("late", True)):
        with pytest.raises(WorkerError) as err:
            run(tmp_path, monkeypatch, name, defer, save_every=5, debug={"inject_nan_at_step": 5})
        assert err.value.code == "E_TRAIN_DIVERGED" and "loss is nan at step 5" in err.value.message
        assert not os.path.exists(os.path.join(tmp_path, name, "checkpoints", "step-000005"))


def test_the_learning_rate_read_without_a_sync_is_the_schedulers():
    """A tensor learning rate (the capturable AdamW's) through every LambdaLR schedule the trainer builds."""
    from diffusers.optimization import get_scheduler

    for kind in ("constant", "constant_with_warmup", "cosine", "linear"):
        p = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.AdamW([p], lr=torch.tensor(1e-3))
        sched = get_scheduler(kind, optimizer=opt, num_warmup_steps=3, num_training_steps=10)
        for _ in range(10):
            opt.step()
            sched.step()
            assert torch.is_tensor(sched.get_last_lr()[0])
            assert loss_read.host_lr(sched, 1e-3) == pytest.approx(float(sched.get_last_lr()[0]), rel=1e-6), kind


def test_on_the_cpu_a_loss_is_read_at_once():
    reader = loss_read.LossReader(torch.device("cpu"))
    p = reader.put(4, torch.tensor(0.25, requires_grad=True) * 2, 1e-4)
    assert p.event is None and loss_read.LossReader.value(p) == 0.5 and (p.step, p.lr) == (4, 1e-4)
