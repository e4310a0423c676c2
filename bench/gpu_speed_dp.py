"""bench/gpu-speed.py --processes N: each selected row run again data-parallel on N GPUs (spawned ranks, the
trainer's gradient all-reduce, distributed.Group); rank 0 sends the row back."""

from __future__ import annotations

import os

import torch

from gpu_speed_configs import LABEL


def _rank_main(rank: int, world: int, port: int, run_config, model, name, s, args, queue) -> None:
    from loraspec_worker import distributed

    group = distributed.Group(rank, world, local_rank=rank)
    base = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    device = group.device(base)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as gpu-speed.py's main(); run_config sets the SDPA backend per row
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # the group joins by env:// as under torchrun
    group.join(device.type)
    try:
        row = run_config(model, name, s, args, device, dtype, {}, group=group)
        if rank == 0:
            queue.put({**row, "config": f"{name}, {world} processes", "processes": world})
    except Exception as e:  # noqa: BLE001
        if rank == 0:
            queue.put({"model": model, "label": LABEL[model], "config": f"{name}, {world} processes", "processes": world,
                       "gradient_checkpointing": s["ckpt"], "batch": s["batch"], "error": f"{type(e).__name__}: {str(e)[:300]}"})
    finally:
        group.close()


def run_data_parallel(run_config, model, name, s, args, device) -> dict:
    """The same row on `args.processes` GPUs: every rank a full batch, gradients averaged each step
    (run_config: gpu-speed.py's, run with the rank's distributed.Group)."""
    import torch.multiprocessing as mp

    from loraspec_worker import distributed

    if device.type == "cuda" and torch.cuda.device_count() < args.processes:
        return {"model": model, "label": LABEL[model], "config": f"{name}, {args.processes} processes", "processes": args.processes,
                "gradient_checkpointing": s["ckpt"], "batch": s["batch"], "error": f"only {torch.cuda.device_count()} GPUs"}
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_rank_main, args=(args.processes, distributed.free_port(), run_config, model, name, s, args, queue), nprocs=args.processes,
                       join=True, start_method="spawn")
    return queue.get()
