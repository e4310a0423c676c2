"""Toy-world jobs side by side: each in its own process on one torch thread (the toy models are too
small for a second thread to pay, and several torch processes with default threads thrash a 2-core
machine), as many at once as there are lanes. Training is deterministic per process and thread
count, so a LoRA trained in a lane is the one trained in-process on one thread.

LANES: `LORASPEC_TOY_LANES`, else the CPU count capped at 2 (CI's machine has 2 cores).
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable

# One CPU thread for training and sampling: on a shared 2-core machine two threads per process
# thrash (the toy base sampled 1 image in 27 s with two threads, 1.2 s with one, under load 5).
THREADS = 1


def lanes() -> int:
    wanted = os.environ.get("LORASPEC_TOY_LANES")
    return max(1, int(wanted)) if wanted else max(1, min(2, os.cpu_count() or 1))


def _lane_start() -> None:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    import torch

    from loraspec_worker import protocol

    torch.set_num_threads(THREADS)
    protocol._out = io.StringIO()  # the trainer's events are not the caller's output


def in_processes(jobs: dict[str, tuple[Callable, tuple, dict]], workers: int | None = None) -> dict[str, Any]:
    """{name: (function, args, kwargs)} -> {name: result}, the longest jobs first (pass them in that
    order: the pool starts them as listed). Functions and arguments must pickle (module level).
    One lane runs them here in turn, without a process."""
    workers = min(workers or lanes(), len(jobs))
    if workers <= 1:
        return _here(jobs)
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_lane_start) as pool:
        futures = {name: pool.submit(fn, *args, **kwargs) for name, (fn, args, kwargs) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def on_one_thread(fn: Callable, *args, **kwargs):
    """fn(*args, **kwargs) in this process with torch on THREADS threads, as it was after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


def _here(jobs: dict) -> dict:
    return {name: on_one_thread(fn, *args, **kwargs) for name, (fn, args, kwargs) in jobs.items()}


def in_threads(calls: dict[str, tuple[Callable, tuple, dict]], workers: int | None = None) -> dict[str, Any]:
    """For calls that wait on a child process (`loraspec validate`): threads are enough."""
    workers = min(workers or lanes(), len(calls))
    if workers <= 1:
        return {name: fn(*args, **kwargs) for name, (fn, args, kwargs) in calls.items()}
    with ThreadPoolExecutor(workers) as pool:
        futures = {name: pool.submit(fn, *args, **kwargs) for name, (fn, args, kwargs) in calls.items()}
        return {name: f.result() for name, f in futures.items()}
