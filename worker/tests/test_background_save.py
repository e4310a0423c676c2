"""Periodic saves written on a background thread (train/background_save.py): a checkpoint holds the
values of its step although training goes on while it is written, its event comes when its files are
on disk, and a write's error stops the run on the training thread."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest
import torch

from loraspec_worker import checkpoint_integrity as ci
from loraspec_worker import protocol, speed, tiny_base, train
from loraspec_worker.train import checkpoint, loop
from loraspec_worker.train.background_save import HostSnapshot, Writer
from loraspec_worker.train.dev_request import dev_request
from noise_dataset import write_noise_dataset  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bg")
    base = tiny_base.make_tiny_base("sdxl", str(root / "base"), seed=0)
    data = write_noise_dataset(root / "data", 2, (40, 48), "a photo of txcl, sample {i}", name="img{i}")
    return base, data


def request(setup, out, **over):
    base, data = setup
    return dev_request(**{"arch": "sdxl", "base": base, "dataset": data, "output_dir": str(out), "resolution": 32, "steps": 6, "rank": 4,
                          "alpha": 4, "learning_rate": 1e-2, "seed": 7, "max_sequence_length": 32, "save_every": 2, "precision": "fp32", **over})


def test_a_checkpoint_holds_its_steps_values_while_the_next_steps_run(setup, tmp_path, events, monkeypatch):
    from safetensors.torch import load_file

    captured, ran_on, live = {}, {}, {}
    save = loop.TrainState.save

    def capture(state):  # the values at the step, taken before the snapshot
        live["state"] = state
        tensors = {}
        for attr, module in zip(state.lora_configs, state.trainable):
            tensors.update({k: v.clone() for k, v in checkpoint.live_lora_tensors(module, attr).items()})
        opt = {i: {k: v.clone() for k, v in s.items()} for i, s in state.optimizer.state_dict()["state"].items()}
        captured[state.step] = (tensors, opt)
        save(state)

    def slow_write(snap):  # the write starts only once the next step has updated the parameters
        step = int(snap.folder[-6:])
        deadline = time.time() + 30
        while len(live["state"].losses) <= step and time.time() < deadline:
            time.sleep(0.01)
        ran_on[step] = len(live["state"].losses)
        return write(snap)

    def checked_emit(event):  # a checkpoint event only for a checkpoint that is whole on disk
        if event["type"] == "checkpoint" and "seconds" in event:
            event = {**event, "whole": ci.checkpoint_problem(os.path.dirname(event["path"])) is None}
        protocol.emit(event)

    write = loop.write_checkpoint
    monkeypatch.setattr(loop.TrainState, "save", capture)
    monkeypatch.setattr(loop, "write_checkpoint", slow_write)
    monkeypatch.setattr(loop, "emit", checked_emit)
    result = train.run(request(setup, tmp_path / "run"))

    assert sorted(captured) == [2, 4] and all(ran_on[s] > s for s in captured)  # the next step ran during each write
    ckpts = [e for e in events() if e["type"] == "checkpoint" and "seconds" in e]
    assert [e["step"] for e in ckpts] == [2, 4] and all(e["whole"] for e in ckpts)
    assert result["checkpoints"] == [e["path"] for e in ckpts]
    final = load_file(result["path"])
    for step, (tensors, opt) in captured.items():
        folder = tmp_path / "run" / "checkpoints" / f"step-{step:06d}"
        saved = load_file(str(folder / "lora.safetensors"))
        assert saved.keys() == tensors.keys()
        assert all(torch.equal(saved[k], tensors[k]) for k in tensors)
        assert any(not torch.equal(saved[k], final[k]) for k in tensors)  # training moved on
        state = torch.load(folder / "state.pt", weights_only=False)
        assert state["step"] == step and len(state["losses"]) == step
        for i, s in opt.items():
            assert all(torch.equal(state["optimizer"]["state"][i][k], v) for k, v in s.items())


def test_a_checkpoint_resumes_on_the_same_loss_curve(setup, tmp_path, events):
    straight = train.run(request(setup, tmp_path / "a"))
    cut = train.run(request(setup, tmp_path / "b", debug={"stop_after_step": 4}))
    assert cut["checkpoints"][-1].endswith("step-000004/lora.safetensors")  # written before the stopped run returned
    resumed = train.run(request(setup, tmp_path / "b", resume_from="latest"))
    assert resumed["startStep"] == 4 and resumed["finalLoss"] == pytest.approx(straight["finalLoss"], rel=1e-4)


def test_a_failed_write_stops_the_run_with_its_error_and_leaves_no_resumable_folder(setup, tmp_path, events, monkeypatch):
    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(checkpoint, "atomic_torch_save", full)
    with pytest.raises(OSError) as err:
        train.run(request(setup, tmp_path))
    assert err.value.errno == errno.ENOSPC  # the error a synchronous save raised, from the training thread
    evs = events()
    assert not [e for e in evs if e["type"] == "checkpoint"]
    assert max(e["step"] for e in evs if e["type"] == "loss") < 6  # raised at the step after the write failed, or by the next save
    assert not (tmp_path / "lora.safetensors").exists()
    assert os.listdir(tmp_path / "checkpoints") == ["step-000002"]
    assert checkpoint.find_latest_checkpoint(str(tmp_path)) is None  # a LoRA file without state.pt is unfinished


def test_the_snapshot_copies_tensors_into_buffers_it_reuses():
    host = HostSnapshot()
    live = {"w": torch.ones(3), "nested": [torch.zeros(2), {"step": torch.tensor(5.0)}], "lr": 0.1, "names": ("a", "b")}
    first = host.tree(("s",), live)
    live["w"].add_(1)
    live["nested"][1]["step"].add_(1)
    assert torch.equal(first["w"], torch.ones(3)) and first["nested"][1]["step"].item() == 5.0
    assert first["lr"] == 0.1 and first["names"] == ("a", "b")
    host.ready()()  # no device copies on the CPU: returns at once
    again = host.tree(("s",), live)
    assert again["w"].data_ptr() == first["w"].data_ptr() and torch.equal(again["w"], torch.full((3,), 2.0))


def test_only_the_0d_device_tensors_asked_for_stay_on_their_device():
    """A capturable optimizer's lr (a 0-d GPU tensor) stays on the GPU; the meta device stands in for it."""
    host = HostSnapshot()
    groups = host.tree(("g",), [{"lr": torch.empty((), device="meta"), "betas": (0.9, 0.999)}], scalars_stay=True)
    assert groups[0]["lr"].device.type == "meta" and groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(NotImplementedError):  # anything else is copied to the host (a meta tensor has no data to copy)
        host.tree(("s",), {"step": torch.empty((), device="meta")})


def test_the_writer_keeps_one_write_in_flight_and_raises_its_error_once():
    writer, order, gate = Writer(), [], threading.Event()
    writer.submit(lambda: (gate.wait(5), order.append("first")))
    assert writer.busy
    threading.Timer(0.2, gate.set).start()
    writer.submit(lambda: order.append("second"))  # waits for the first
    writer.wait()
    assert order == ["first", "second"] and not writer.busy

    def fail():
        raise OSError(errno.ENOSPC, "No space left on device")

    writer.submit(fail)
    while writer.busy:
        time.sleep(0.01)
    with pytest.raises(OSError):
        writer.check()  # a finished write's error, without a wait
    writer.wait()  # raised once
    writer.check()


def test_the_graph_step_says_when_it_captures_next():
    stepper = speed.GraphedStep(arch=None, params=[], optimizer=None, warmup=2)
    assert not stepper.captures_next()
    stepper.done = 2
    assert stepper.captures_next()
    stepper.graph = object()
    assert not stepper.captures_next()
    stepper.graph, stepper.failed = None, True
    assert not stepper.captures_next()
