"""Periodic checkpoint saves off the training thread (issue 22).

The training thread takes a snapshot (HostSnapshot): every tensor the checkpoint holds is copied to
host memory, on CUDA non_blocking into pinned buffers followed by an event, so the copy is ordered on
the stream before the next step's kernels and the snapshot holds this step's values while the next
step runs. Resume puts the optimizer's per-parameter state on its parameter's device (torch's
Optimizer.load_state_dict; bitsandbytes on its first step), but not the values of its param groups
and of the LR scheduler: a capturable optimizer's `lr` and `initial_lr` are 0-d GPU tensors the CUDA
graph reads. Those few (tree(..., scalars_stay=True)) are cloned on the device, so state.pt keeps
them there as it did when the save was synchronous (the writer's torch.save copies them to the host).

The Writer then writes the files on its own thread while training goes on. At most one write is in
flight: the next save, the final save, the end of the run and a CUDA-graph capture (no other thread
may use the GPU then) wait for it (Writer.wait). An error of the write is raised on the training
thread, as it was when the save was synchronous: at the first step after the write failed
(Writer.check) or where it waits.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Callable, Optional


class HostSnapshot:
    """Copies tensors into host buffers that are kept between saves: the next snapshot reuses them
    (safe because it is taken only after the previous write finished)."""

    def __init__(self) -> None:
        self._buffers: dict = {}
        self._devices: set = set()

    def tensor(self, key: tuple, t, scalars_stay: bool = False) -> Any:
        import torch

        t = t.detach()
        if scalars_stay and t.dim() == 0 and t.device.type != "cpu":
            return t.clone()  # stays on its device (see the module docstring)
        buf = self._buffers.get(key)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=t.is_cuda)
            self._buffers[key] = buf
        buf.copy_(t, non_blocking=t.is_cuda)
        if t.is_cuda:
            self._devices.add(t.device)
        return buf

    def tree(self, key: tuple, obj: Any, scalars_stay: bool = False) -> Any:
        """`obj` with every tensor copied (dicts, lists and tuples walked; anything else deep-copied, so
        later changes to the live objects do not reach the snapshot)."""
        import torch

        if isinstance(obj, torch.Tensor):
            return self.tensor(key, obj, scalars_stay)
        if isinstance(obj, dict):
            return {k: self.tree((*key, k), v, scalars_stay) for k, v in obj.items()}
        if type(obj) in (list, tuple):
            return type(obj)(self.tree((*key, i), v, scalars_stay) for i, v in enumerate(obj))
        return copy.deepcopy(obj)

    def ready(self) -> Callable[[], None]:
        """Marks the end of this snapshot's copies; the returned function (called on the writer thread)
        returns once they are done."""
        import torch

        events = []
        for device in self._devices:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(device))
            events.append(event)
        self._devices = set()

        def wait() -> None:
            for event in events:
                event.synchronize()

        return wait


class Writer:
    """One background write at a time; its error is raised by the next wait()."""

    def __init__(self) -> None:
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def submit(self, write: Callable[[], None]) -> None:
        self.wait()

        def run() -> None:
            try:
                write()
            except BaseException as e:  # noqa: BLE001 - handed to the training thread by wait()
                self._error = e

        # Not a daemon: an interpreter that exits on another error still lets the write finish
        # (atomic writes: a kill mid-write leaves only a temp file, swept by the next run).
        self._thread = threading.Thread(target=run, name="loraspec-checkpoint-writer")
        self._thread.start()

    def wait(self) -> None:
        """Returns when no write is in flight; raises the last write's error, once."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def check(self) -> None:
        """Raises a finished write's error now (called every step: a full disk stops the run at once,
        not at the next save); never waits."""
        if self._thread is not None and not self._thread.is_alive():
            self.wait()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
