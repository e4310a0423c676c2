"""Each step's loss read on the host one step late, so the GPU is never left waiting for the host (issue 22).

Reading a loss with `.item()` waits for every kernel queued before the read: the host then dispatches the
next work onto an empty GPU (the CUDA-graph step: the next replay only after the events and the next batch's
copies; the eager step: the backward only after the forward finished). With `debug.defer_loss_read` the
loop instead copies the loss into a pinned host buffer as soon as it is computed (non_blocking, then a CUDA
event), dispatches the rest of the step and the next step's work, and only then waits for that event: the
read waits for this one step's loss, never for the queue behind it, so the host keeps one step ahead.

What changes for a run: the loss and progress events of a step come after the next step was dispatched
(the loop reads every pending loss before a save, a sample, a stop or cancel and the last step, so those
see every loss first); a non-finite loss is found one step later: that step's update and the next one's
have run on the GPU when the run stops with the same error as before, and no checkpoint holds them (a save
reads its step's loss first, and the end's finite check stands). Off by default until a GPU run measures it
against the read each step (bench/gpu-wholerun.py --set debug.defer_loss_read=true); on the CPU the copy is
synchronous and the loop is the same as without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

DEPTH = 2  # buffers in flight: this step's and the previous step's, read before the next put


@dataclass
class Pending:
    step: int
    lr: float
    buffer: Any = None  # the pinned host copy (CUDA), read after `event`
    event: Any = None
    value: Optional[float] = None  # the value, read at once (CPU)


class LossReader:
    def __init__(self, device) -> None:
        import torch

        self.cuda = getattr(device, "type", "cpu") == "cuda"
        self.buffers = [torch.empty((), dtype=torch.float32, pin_memory=True) for _ in range(DEPTH)] if self.cuda else []
        self.n = 0

    def put(self, step: int, loss, lr: float) -> Pending:
        """Starts the copy of this step's loss to the host; call it right after the loss is computed (before a
        CUDA-graph replay overwrites its static output)."""
        import torch

        loss = loss.detach()
        if not self.cuda:
            return Pending(step, lr, value=float(loss))
        buffer = self.buffers[self.n % DEPTH]
        self.n += 1
        buffer.copy_(loss.float(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return Pending(step, lr, buffer=buffer, event=event)

    @staticmethod
    def value(p: Pending) -> float:
        """The loss on the host: waits for its own copy only."""
        if p.event is not None:
            p.event.synchronize()
            return float(p.buffer)
        return float(p.value)


def host_lr(scheduler, base_lr: float) -> float:
    """The scheduler's current learning rate without a host sync: a capturable optimizer keeps it as a GPU tensor
    (speed.make_capturable_adamw); a LambdaLR's (every schedule the trainer builds, diffusers' get_scheduler)
    is the base rate times its lambda at the current epoch. Another scheduler's tensor is read (a sync)."""
    import torch

    lr = scheduler.get_last_lr()[0]
    if not torch.is_tensor(lr):
        return float(lr)
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas:
        return float(base_lr * lambdas[0](scheduler.last_epoch))
    return float(lr)
