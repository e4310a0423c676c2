"""Data-parallel training through torchrun (launch.py, distributed.py) on the CPU with the gloo
backend: two processes at gradient_accumulation 1 train exactly what one process trains at
gradient_accumulation 2; a NaN, a crashed rank and a cancel end every rank with one coded outcome."""

from __future__ import annotations

import io
import json
import os
import signal

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol, tiny_base, train  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402
from loraspec_worker.train.dev_request import dev_request  # noqa: E402
from loraspec_worker.protocol import WorkerError  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built in")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    base = tiny_base.make_tiny_base("flux1", str(root / "base"), seed=0)
    return base, write_noise_dataset(root / "data", 4, (32, 32), "a photo of txcl, view {i}"), root


def _run(setup, name, monkeypatch, **over):
    base, data, root = setup
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    req = dev_request(**{"arch": "flux1", "base": base, "dataset": data, "output_dir": str(root / name), "resolution": 32, "steps": 4,
                         "rank": 4, "alpha": 4, "learning_rate": 1e-2, "max_sequence_length": 32, "seed": 3, "device": "cpu", **over})
    result = train.run(req)
    events = [json.loads(l) for l in buf.getvalue().splitlines()]
    return result, events


def test_two_processes_train_what_one_process_trains_with_accumulation(setup, monkeypatch, tmp_path):
    import tempfile

    from safetensors.torch import load_file

    one, ev1 = _run(setup, "one", monkeypatch, gradient_accumulation=2)
    # the supervisor's temp files (the request, the launcher's per-rank folder) and the ranks' go in a temp folder of
    # this test's own, which the run leaves empty (torchrun's default torchelastic_* folder was never removed)
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    two, ev2 = _run(setup, "two", monkeypatch, num_processes=2, save_every=2)
    assert os.listdir(private) == []
    l1 = [e["loss"] for e in ev1 if e["type"] == "loss"]
    l2 = [e["loss"] for e in ev2 if e["type"] == "loss"]
    assert len(l1) == len(l2) == 4
    np.testing.assert_allclose(l2, l1, rtol=1e-5)
    assert two["processes"] == 2 and one["processes"] == 1
    a, b = load_file(one["path"]), load_file(two["path"])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)
    # only rank 0 writes: one checkpoint folder at step 2, one final file
    assert [e["step"] for e in ev2 if e["type"] == "checkpoint"] == [2, 4]
    assert sorted(os.listdir(os.path.join(os.path.dirname(two["path"]), "checkpoints"))) == ["step-000002"]


def test_a_nan_on_the_group_stops_every_rank_with_diverged(setup, monkeypatch):
    with pytest.raises(WorkerError) as err:
        _run(setup, "nan", monkeypatch, num_processes=2, debug={"inject_nan_at_step": 2})
    assert err.value.code == "E_TRAIN_DIVERGED"


def test_train_rank_by_hand_is_a_usage_error(monkeypatch):
    from loraspec_worker import launch, train

    monkeypatch.delenv(launch.ENV_LAUNCHED, raising=False)
    with pytest.raises(WorkerError) as err:
        train.run_rank(dev_request(arch="flux1", base="x", dataset="d", output_dir="o"))
    assert err.value.code == "E_USAGE"


@pytest.mark.slow
def test_a_crashed_rank_ends_the_run_with_a_coded_error(setup, monkeypatch):
    with pytest.raises(WorkerError) as err:
        _run(setup, "crash", monkeypatch, num_processes=2, steps=6, debug={"crash_rank_at_step": {"rank": 1, "step": 2}})
    assert err.value.code == "E_WORKER_CRASHED" and err.value.retryable


@pytest.mark.slow
def test_cancel_reaches_every_rank_and_rank_0_keeps_a_checkpoint(setup, monkeypatch):
    from loraspec_worker import launch

    monkeypatch.setenv("LORASPEC_TEST_STEP_DELAY_S", "1")
    real_emit = launch.emit

    def emit_then_cancel(event):  # the bridge's SIGTERM, once the first step is reported
        real_emit(event)
        if event["type"] == "loss" and event["step"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(launch, "emit", emit_then_cancel)
    with pytest.raises(protocol.Cancelled):
        _run(setup, "cancel", monkeypatch, num_processes=2, steps=8)
    kept = os.listdir(os.path.join(setup[2], "cancel", "checkpoints"))
    assert len(kept) == 1 and kept[0] < "step-000008"


@pytest.mark.slow
def test_two_hosts_by_static_rendezvous_train_what_one_process_trains_with_accumulation(setup, monkeypatch, tmp_path):
    """Two "hosts" on this one (nodes {count 2}, one process each, node 1 a separate worker): the
    same LoRA as accumulation 2 in one process; node 0 reports, node 1 ends as a follower."""
    import subprocess
    import sys

    from loraspec_worker import distributed

    base, data, root = setup
    endpoint = f"127.0.0.1:{distributed.free_port()}"
    common = {"arch": "flux1", "base": base, "dataset": data, "resolution": 32, "steps": 4, "rank": 4, "alpha": 4, "learning_rate": 1e-2,
              "max_sequence_length": 32, "seed": 3, "device": "cpu"}
    follower_req = tmp_path / "node1.json"
    follower_req.write_text(json.dumps(dev_request(**common, output_dir=str(root / "node1"), nodes={"count": 2, "rank": 1, "endpoint": endpoint})))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__)), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    follower = subprocess.Popen([sys.executable, "-m", "loraspec_worker", "train", str(follower_req)], env=env, stdout=subprocess.PIPE)
    try:
        two, ev2 = _run(setup, "node0", monkeypatch, nodes={"count": 2, "rank": 0, "endpoint": endpoint})
        out, _ = follower.communicate(timeout=300)
    finally:
        if follower.poll() is None:
            follower.kill()
    one, ev1 = _run(setup, "one-host", monkeypatch, gradient_accumulation=2)
    np.testing.assert_allclose([e["loss"] for e in ev2 if e["type"] == "loss"], [e["loss"] for e in ev1 if e["type"] == "loss"], rtol=1e-5)
    from safetensors.torch import load_file

    a, b = load_file(one["path"]), load_file(two["path"])
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert follower.returncode == 0 and events[-1]["type"] == "done" and events[-1]["result"]["follower"] is True
    assert [e for e in events if e["type"] == "loss"] == []  # only rank 0 (on node 0) reports


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads the process tree from /proc (Linux)")
def test_a_killed_worker_leaves_no_rank_behind(setup, tmp_path):
    """The bridge's last resort is SIGKILL to the worker: torchrun (its own session) and the ranks
    (torchrun's sessions) must not outlive it. Two things end them: rank 0's next event breaks on the
    closed pipe, and torchrun's parent-death signal (launch.die_with_parent), for ranks that are not
    writing (a long model load, a hung collective)."""
    import subprocess
    import sys
    import time

    base, data, root = setup
    req = tmp_path / "req.json"
    req.write_text(json.dumps(dev_request(arch="flux1", base=base, dataset=data, output_dir=str(root / "killed"), resolution=32, steps=50, rank=4,
                                          alpha=4, learning_rate=1e-2, max_sequence_length=32, seed=3, device="cpu", num_processes=2)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__)), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", LORASPEC_TEST_STEP_DELAY_S="0.5")
    worker = subprocess.Popen([sys.executable, "-m", "loraspec_worker", "train", str(req)], env=env, stdout=subprocess.PIPE)
    try:
        for line in worker.stdout:
            if json.loads(line).get("type") == "loss":
                break
        torchrun = _children(worker.pid)
        ranks = [r for t in torchrun for r in _children(t)]
        assert len(torchrun) == 1 and len(ranks) == 2
        worker.kill()
        worker.wait()
        deadline = time.time() + 60
        while any(_alive(p) for p in torchrun + ranks) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(_alive(p) for p in torchrun + ranks)
    finally:
        if worker.poll() is None:
            worker.kill()


@pytest.mark.slow
def test_the_bridges_sigint_to_the_process_group_stops_every_rank_at_a_checkpoint(setup, tmp_path):
    """As the engine cancels a run (SIGINT to the worker's process group): E_CANCELLED, exit 130,
    and rank 0 kept the step it stopped at."""
    import subprocess
    import sys

    base, data, root = setup
    req = tmp_path / "req.json"
    req.write_text(json.dumps(dev_request(arch="flux1", base=base, dataset=data, output_dir=str(root / "group-sigint"), resolution=32, steps=50,
                                          rank=4, alpha=4, learning_rate=1e-2, max_sequence_length=32, seed=3, device="cpu", num_processes=2)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__)), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", LORASPEC_TEST_STEP_DELAY_S="0.5")
    worker = subprocess.Popen([sys.executable, "-m", "loraspec_worker", "train", str(req)], env=env, stdout=subprocess.PIPE, start_new_session=True)
    try:
        events = []
        for line in worker.stdout:
            events.append(json.loads(line))
            if events[-1]["type"] == "loss":
                os.killpg(worker.pid, signal.SIGINT)
                break
        events += [json.loads(line) for line in worker.stdout]
        assert worker.wait(timeout=120) == protocol.EXIT_CANCELLED
        assert events[-1]["code"] == "E_CANCELLED"
        assert len(os.listdir(os.path.join(root, "group-sigint", "checkpoints"))) == 1
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (NCCL)")
def test_two_gpus_through_torchrun_train_what_one_gpu_trains_with_accumulation(setup, monkeypatch):
    one, ev1 = _run(setup, "gpu-one", monkeypatch, device="cuda", gradient_accumulation=2)
    two, ev2 = _run(setup, "gpu-two", monkeypatch, device="cuda", num_processes=2)
    assert two["processes"] == 2
    # NCCL sums in another order than one process's accumulation: close, not bitwise
    np.testing.assert_allclose([e["loss"] for e in ev2 if e["type"] == "loss"], [e["loss"] for e in ev1 if e["type"] == "loss"], rtol=1e-3)
