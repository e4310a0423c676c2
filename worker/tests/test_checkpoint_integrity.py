"""Checksummed checkpoints: a truncated or unfinished file is never resumed from; the newest good one is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loraspec_worker import checkpoint_integrity as ci
from loraspec_worker import tiny_base, train
from loraspec_worker.train.dev_request import dev_request
from noise_dataset import write_noise_dataset  # noqa: E402


def write_bytes(data: bytes):
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return write


def fake_checkpoint(root, step: int, state: bytes = b"state", lora: bytes = b"lora") -> str:
    folder = os.path.join(root, "checkpoints", f"step-{step:06d}")
    ci.atomic_save(os.path.join(folder, "lora.safetensors"), write_bytes(lora))
    ci.atomic_save(os.path.join(folder, "state.pt"), write_bytes(state))
    return folder


def test_checksum_is_written_after_the_file_and_verifies(tmp_path):
    path = str(tmp_path / "a.bin")
    ci.atomic_save(path, write_bytes(b"x" * 1000))
    assert ci.problem(path) is None
    assert open(path + ".sha256").read().startswith(ci.sha256_file(path))
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_a_failed_write_leaves_no_temp_file_and_no_checksum(tmp_path):
    path = str(tmp_path / "state.pt")

    def disk_full(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        ci.atomic_save(path, disk_full)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda p: open(p, "r+b").truncate(3), "does not match its checksum"),
        (lambda p: os.remove(p + ".sha256"), "has no checksum"),
        (lambda p: os.remove(p), "is missing"),
    ],
)
def test_damage_is_named(tmp_path, damage, why):
    path = str(tmp_path / "state.pt")
    ci.atomic_save(path, write_bytes(b"0123456789"))
    damage(path)
    assert why in (ci.problem(path) or "")


@pytest.mark.parametrize("bad_file", ["state.pt", "lora.safetensors"])
def test_resume_falls_back_past_a_corrupt_newest_checkpoint_with_a_warning(tmp_path, events, bad_file):
    fake_checkpoint(tmp_path, 2)
    newest = fake_checkpoint(tmp_path, 4)
    open(os.path.join(newest, bad_file), "r+b").truncate(2)
    assert ci.newest_good_checkpoint(str(tmp_path)).endswith("step-000002")
    [warn] = [e for e in events() if e["type"] == "warning"]
    assert warn["code"] == "W_CHECKPOINT_CORRUPT" and "step-000004" in warn["message"] and bad_file in warn["message"]


def test_checkpoints_from_before_checksums_still_resume(tmp_path, events):
    folder = tmp_path / "checkpoints" / "step-000003"
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(b"s")
    (folder / "lora.safetensors").write_bytes(b"l")
    assert ci.newest_good_checkpoint(str(tmp_path)) == str(folder)
    assert events()[0]["code"] == "W_CHECKPOINT_UNVERIFIED"


def test_temp_files_of_dead_writers_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = tmp_path / "checkpoints" / "step-000001" / f"state.pt.tmp-{dead.stdout.strip()}"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    mine = tmp_path / f"lora.safetensors.tmp-{os.getpid()}"
    mine.write_bytes(b"in progress")
    assert ci.remove_stale_temp_files(str(tmp_path)) == [str(stale)]
    assert mine.exists()


def test_the_trainer_resumes_from_the_newest_good_checkpoint(tmp_path, events):
    """A real run on a tiny base: the newest state.pt truncated, resume takes the one before it."""
    base = tiny_base.make_tiny_base("flux1", str(tmp_path / "base"), seed=0)
    data = write_noise_dataset(tmp_path / "data", 2, (40, 48), "a photo of txcl, sample {i}", name="img{i}")
    out = tmp_path / "run"
    req = {"arch": "flux1", "base": base, "dataset": data, "output_dir": str(out), "resolution": 32, "steps": 4, "rank": 4,
           "alpha": 4, "learning_rate": 1e-3, "seed": 7, "trigger_word": "txcl", "max_sequence_length": 32, "save_every": 1, "precision": "fp32"}
    train.run(dev_request(**req, debug={"stop_after_step": 3}))
    newest = out / "checkpoints" / "step-000003" / "state.pt"
    assert (out / "checkpoints" / "step-000003" / "state.pt.sha256").exists()
    with open(newest, "r+b") as f:
        f.truncate(100)
    resumed = train.run(dev_request(**req, resume_from="latest"))
    assert resumed["startStep"] == 2 and resumed["steps"] == 4
    warns = [e for e in events() if e["type"] == "warning" and e.get("code") == "W_CHECKPOINT_CORRUPT"]
    assert len(warns) == 1 and "step-000003" in warns[0]["message"]
    assert not list(out.rglob("*.tmp-*"))


@pytest.mark.parametrize("saved_tensor_lr, run_tensor_lr", [(False, True), (True, False), (True, True), (False, False)])
def test_a_checkpoint_resumes_with_the_lr_kind_of_the_run_that_loads_it(saved_tensor_lr, run_tensor_lr):
    """An eager run's checkpoint resumed under the CUDA graph (capturable AdamW: lr a tensor the graph reads)
    and the reverse: the loaded lr takes the loading optimizer's kind, the checkpoint's value, and a tensor
    lr stays the very tensor the optimizer was built with (a captured step reads that storage)."""
    import torch

    from loraspec_worker.train.checkpoint import keep_lr_kind

    def optimizer(tensor_lr: bool, lr: float):
        p = torch.nn.Parameter(torch.ones(3))
        return torch.optim.AdamW([p], lr=torch.tensor(lr) if tensor_lr else lr, foreach=False)

    source = optimizer(saved_tensor_lr, 1e-3)
    source.param_groups[0]["params"][0].grad = torch.ones(3)
    source.step()
    source.param_groups[0]["lr"] = torch.tensor(2.5e-4) if saved_tensor_lr else 2.5e-4  # where the schedule was
    state = source.state_dict()
    target = optimizer(run_tensor_lr, 1e-3)
    built = [g["lr"] for g in target.param_groups]
    target.load_state_dict(state)
    keep_lr_kind(target, built)
    lr = target.param_groups[0]["lr"]
    assert torch.is_tensor(lr) == run_tensor_lr
    assert float(lr) == pytest.approx(2.5e-4)
    if run_tensor_lr:
        assert lr is built[0]
    target.param_groups[0]["params"][0].grad = torch.ones(3)
    target.step()  # the loaded state steps in the loading optimizer's kind


class _RunsCode:
    """A pickle that would run code when loaded (what a hostile state.pt could hold)."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_state_file_that_would_run_code_is_refused_with_its_code(tmp_path):
    """state.pt is read as data: the RNG states, tensors and numbers of a real checkpoint load; an object
    that would run code on unpickling is refused (E_CHECKPOINT_INVALID naming the file), not executed."""
    import random

    import numpy as np
    import torch

    from loraspec_worker.protocol import WorkerError
    from loraspec_worker.train.checkpoint import load_state

    good = tmp_path / "good.pt"
    torch.save({"step": 3, "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
                "optimizer": {"param_groups": [{"lr": torch.tensor(1e-3)}], "state": {}}, "config": {"name": "x", "buckets": [{"width": 64}]}}, good)
    state = load_state(str(good))
    assert state["step"] == 3 and state["rng"]["numpy"][0] == "MT19937"
    bad = tmp_path / "bad.pt"
    torch.save({"step": 3, "payload": _RunsCode()}, bad)
    with pytest.raises(WorkerError) as err:
        load_state(str(bad))
    assert err.value.code == "E_CHECKPOINT_INVALID" and str(bad) in err.value.message
