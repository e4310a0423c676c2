"""Data-parallel training (request `num_processes` > 1, and `nodes` for several hosts).

The worker the CLI started launches the ranks through torchrun and supervises them (launch.py);
every rank runs `train-rank` and joins the group here from torchrun's environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; NCCL on CUDA, gloo on the CPU). Every rank trains on its
own slice of each step's samples: rank r takes the micro-batch that a single process would take as
micro-batch `micro * N + r` (same indices, same noise seeds), and the LoRA gradients are averaged
with one all-reduce per step (not DDP: docs/design-notes.md says why). So N processes at
gradient_accumulation g train exactly what one process trains at gradient_accumulation g * N
(test_distributed.py checks the loss curves and the weights match). Decisions that must agree (a
NaN loss, a stop request) are all-reduced too, so no rank is left waiting in a collective.
"""

from __future__ import annotations

import os
from typing import Optional

from .launch import ENV_LAUNCHED

# How long a collective may wait for a rank before the group gives up (a crashed rank is caught
# sooner by torchrun's agent, which stops the others; this bounds the rest).
COLLECTIVE_TIMEOUT_S = 600


class Group:
    """This process's place in the training group (world 1: no group, every call is a no-op)."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank = rank
        self.world = world
        self.local_rank = local_rank

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, base):
        """cuda:local_rank for a CUDA run, else the device asked for."""
        import torch

        if self.active and base.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
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

    def join(self, device_type: str) -> None:
        import datetime

        import torch.distributed as dist

        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type != "cuda":
            # N ranks on the CPU share its cores: each keeps its share, or their thread pools
            # oversubscribe the cores and every step crawls.
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))
        dist.init_process_group(backend, init_method="env://", rank=self.rank, world_size=self.world,
                                timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))

    def close(self) -> None:
        if self.active:
            try:
                import torch.distributed as dist

                if dist.is_initialized():
                    dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide it
                pass

    def inject_fault(self, debug: dict, step: int) -> None:
        """Test hook (debug.crash_rank_at_step = {"rank", "step"}): that rank dies hard at that step."""
        crash = debug.get("crash_rank_at_step")
        if crash and self.rank == int(crash["rank"]) and step == int(crash["step"]):
            os._exit(9)


def free_port() -> int:
    """A free TCP port on this host (bench/gpu-speed.py's own group; torchrun picks its own)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_from_env() -> Optional[Group]:
    """A rank torchrun started for loraspec (launch.py): its group, from torchrun's environment."""
    if ENV_LAUNCHED not in os.environ or "RANK" not in os.environ:
        return None
    return Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
