"""Data-parallel training on the GPUs of one host (request `num_processes` > 1).

The worker process the CLI started is rank 0: it keeps the event stream, the signals and every
file it writes. It starts ranks 1..N-1 as `python -m loraspec_worker train-rank` children (stdout
silenced, stderr into the run's log) and joins them in a torch.distributed group (NCCL on CUDA,
gloo on the CPU). Every rank trains on its own slice of each step's samples: rank r takes the
micro-batch that a single process would take as micro-batch `micro * N + r` (same indices, same
noise seeds), and the LoRA gradients are averaged with one all-reduce per step. So N processes at
gradient_accumulation g train exactly what one process trains at gradient_accumulation g * N
(test_distributed.py checks the loss curves match). Decisions that must agree (a NaN loss, a stop
request) are all-reduced too, so no rank is left waiting in a collective.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

from .protocol import WorkerError, emit

ENV_RANK = "LORASPEC_RANK"
ENV_WORLD = "LORASPEC_WORLD_SIZE"
# How long a collective may wait for a rank before the group gives up (a crashed rank is caught
# sooner by the watchdog below; this bounds the rest).
COLLECTIVE_TIMEOUT_S = 600


class Group:
    """This process's place in the training group (world 1: no group, every call is a no-op)."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank = rank
        self.world = world
        self.children: list[subprocess.Popen] = []
        self._request_file: Optional[str] = None
        self._watchdog: Optional[threading.Thread] = None
        self._closing = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, base):
        """cuda:rank for a CUDA run, else the device asked for."""
        import torch

        if self.active and base.type == "cuda":
            torch.cuda.set_device(self.rank)
            return torch.device("cuda", self.rank)
        return base

    # ------------------------------------------------------------------ collectives

    def mean(self, value: float) -> float:
        """The mean of a per-rank float (NaN on any rank makes it NaN everywhere)."""
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        if not self.active:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def average_gradients(self, params) -> None:
        """One all-reduce of every LoRA gradient, flattened into one buffer."""
        if not self.active:
            return
        import torch
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world
        for p, g in zip(params, _unflatten_dense_tensors(flat, grads)):
            if p.grad is None:
                p.grad = g
            else:
                p.grad.copy_(g)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def _comm_device(self):
        import torch
        import torch.distributed as dist

        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")

    # ------------------------------------------------------------------ set-up

    def join(self, device_type: str, port: int) -> None:
        import datetime

        import torch.distributed as dist

        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type != "cuda":
            # N ranks on the CPU share its cores: each keeps its share, or their thread pools
            # oversubscribe the cores and every step crawls.
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=self.rank, world_size=self.world,
                                timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))

    def close(self) -> None:
        self._closing = True
        if self.active:
            try:
                import torch.distributed as dist

                if dist.is_initialized():
                    dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide it
                pass
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if self._request_file and os.path.exists(self._request_file):
            os.unlink(self._request_file)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(request: dict, world: int, device_type: str) -> Group:
    """Rank 0: starts ranks 1..world-1 and joins the group with them."""
    if device_type == "cuda":
        import torch

        if torch.cuda.device_count() < world:
            raise WorkerError("E_USAGE", f"num_processes {world} needs {world} GPUs; this machine has {torch.cuda.device_count()}",
                              hint="lower hardware.gpus in the contract")
    group = Group(0, world)
    port = free_port()
    fd, path = tempfile.mkstemp(prefix="loraspec-rank-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(request, f)
    group._request_file = path
    for rank in range(1, world):
        env = dict(os.environ, **{ENV_RANK: str(rank), ENV_WORLD: str(world), "LORASPEC_MASTER_PORT": str(port)})
        group.children.append(subprocess.Popen([sys.executable, "-m", "loraspec_worker", "train-rank", path],
                                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
    group._watchdog = threading.Thread(target=_watch, args=(group,), daemon=True)
    group._watchdog.start()
    group.join(device_type, port)
    return group


def _watch(group: Group) -> None:
    """A rank that dies mid-run would leave rank 0 waiting in a collective: end the run instead."""
    while not group._closing:
        for rank, child in enumerate(group.children, start=1):
            code = child.poll()
            if code not in (None, 0) and not group._closing:
                emit({"type": "error", "code": "E_WORKER_CRASHED", "message": f"training rank {rank} exited with code {code}; see the worker log",
                      "retryable": True})
                os._exit(70)
        time.sleep(0.5)


def rank_from_env() -> Optional[Group]:
    """Ranks 1..N-1 (started by `start`): their group, from the environment."""
    if ENV_RANK not in os.environ:
        return None
    return Group(int(os.environ[ENV_RANK]), int(os.environ[ENV_WORLD]))
