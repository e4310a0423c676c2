"""What a periodic checkpoint save costs the training thread (issue 22), on an SDXL-sized LoRA.

The LoRA is the one bench/data/gpu-wholerun-requests.json trains on SDXL (rank 16 on to_q, to_k, to_v,
to_out.0: 1,120 tensors, 23.2M parameters, 93 MB in fp32; AdamW's state twice that). The UNet is built
on the meta device (bench/gpu-speed.py's SDXL config) and only the LoRA's tensors are made real, on
--device; AdamW takes one step so its state exists (--capturable: the CUDA-graph path's optimizer).

Two measures:
- parts: one save taken apart (live tensors, host copies, metadata, safetensors write, fsync, sha256,
  the optimizer state's torch.save, ...), each timed alone on the files the trainer writes;
- stall: the trainer's own TrainState.save() between simulated steps (see step(): --sim gpu, the
  default, stands for a CUDA-graph step: a little Python, then the wait for the GPU with the GIL
  released; --sim cpu is a CPU run's AdamW step): the training thread's time in save(), the write's
  own time (the `checkpoint` event's seconds), the steps' median while a write is in flight and not,
  and the wall of (--saves + 1) x --every steps with a save every --every (none at the last step, as
  in a run) against the same steps without saves, the writer's last wait included: each save's cost
  to the run.

Before / after: --worker points at the worker whose TrainState.save is timed (e.g. a checkout of the
commit before the background saves, b49ee6f). On the GPU, --capturable and --plain-copy (blocking
copies into pageable memory instead of non_blocking into pinned buffers) say what the CUDA path costs.
  OMP_NUM_THREADS=1 worker/.venv/bin/python bench/save-stall.py [--worker OLD/worker] [--sim cpu]
  PYTHONPATH=worker python3 bench/save-stall.py --device cuda --capturable [--plain-copy] --json $OUT/save-stall.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build(device: str, capturable: bool):
    """(cfg, unet with the LoRA on `device`, lora_configs, params, optimizer, scheduler, items)."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.optimization import get_scheduler

    from loraspec_worker.train.dev_request import dev_config
    from loraspec_worker.train.model import add_lora

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_load import load_by_path

    gpu_speed = load_by_path("gpu_speed", ROOT / "bench" / "gpu-speed.py")
    out = tempfile.mkdtemp(prefix="save-stall-", dir=os.environ.get("SAVE_STALL_DIR"))
    cfg = dev_config(arch="sdxl", rank=16, alpha=16, targets=TARGETS, output_dir=out)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**gpu_speed.SDXL_UNET)
        conf = add_lora(unet, cfg, cfg.targets)
    for name, module in unet.named_modules():
        if name.endswith(("lora_A.default", "lora_B.default")):
            module.to_empty(device=device)
            torch.nn.init.normal_(module.weight, std=0.01)
    params = [p for p in unet.parameters() if p.requires_grad]
    if capturable:
        from loraspec_worker import speed

        opt = speed.make_capturable_adamw(params, 1e-4, torch.device(device), betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)
    else:
        opt = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    sched = get_scheduler("constant", optimizer=opt, num_warmup_steps=0, num_training_steps=2000)
    items = [(f"/data/{i:02d}.jpg", f"txcl, a photo {i}") for i in range(20)]
    return cfg, unet, {"unet": conf}, params, opt, sched, items


def timed(parts: dict, name: str, fn):
    t = time.perf_counter()
    out = fn()
    parts[name] = parts.get(name, 0.0) + time.perf_counter() - t
    return out


def parts_of_one_save(cfg, unet, lora_configs, opt, sched, items) -> dict:
    """One save's pieces in the order the trainer does them, each timed alone."""
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from loraspec_worker import checkpoint_integrity as ci
    from loraspec_worker.train.checkpoint import lora_metadata

    folder = os.path.join(cfg.output_dir, "parts")
    os.makedirs(folder, exist_ok=True)
    parts: dict = {}
    live = timed(parts, "live LoRA tensors (peft state dict)", lambda: get_peft_model_state_dict(unet))
    lora = timed(parts, "LoRA device->host copy", lambda: {k: v.detach().to("cpu", copy=True) for k, v in live.items()})
    state = timed(parts, "optimizer state_dict + host copy", lambda: {
        "optimizer": {"state": {i: {k: v.to("cpu", copy=True) for k, v in s.items()} for i, s in opt.state_dict()["state"].items()}},
        "scheduler": sched.state_dict()})
    meta = timed(parts, "metadata", lambda: lora_metadata(cfg, lora_configs, 250, items))
    path, state_path = os.path.join(folder, "lora.safetensors"), os.path.join(folder, "state.pt")
    for name, write, target in (("safetensors", lambda: save_file(lora, path, metadata=meta), path),
                                ("state.pt torch.save", lambda: torch.save(state, state_path), state_path)):
        timed(parts, f"{name} write", write)
        fd = os.open(target, os.O_RDONLY)
        timed(parts, f"{name} fsync", lambda: os.fsync(fd))
        os.close(fd)
        timed(parts, f"{name} sha256", lambda: ci.sha256_file(target))
    parts["sizes MB"] = {"lora": os.path.getsize(path) / 1e6, "state": os.path.getsize(state_path) / 1e6}
    return parts


def step(params, opt, args, work) -> float:
    """One simulated step. --sim cpu: AdamW on the LoRA, then matmuls until --step-s (a CPU run). --sim gpu:
    the LoRA nudged in place, --python-ms of Python (a CUDA-graph step's host side), then a sleep to
    --step-s (the thread waits for the GPU with the GIL released, as in the loss's .item())."""
    import torch

    t = time.perf_counter()
    if args.sim == "cpu":
        opt.step()
        while time.perf_counter() - t < args.step_s:
            work()
    else:
        with torch.no_grad():
            torch._foreach_add_(params, 1e-6)
        while time.perf_counter() - t < args.python_ms / 1e3:
            sum(range(1000))
        left = args.step_s - (time.perf_counter() - t)
        if left > 0:
            time.sleep(left)
    if params[0].is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def stall(cfg, unet, lora_configs, params, opt, sched, items, args) -> dict:
    import torch

    from loraspec_worker import protocol
    from loraspec_worker.train import loop

    protocol._out = io.StringIO()
    state = loop.TrainState(cfg=cfg, arch=None, cache=[], items=items, params=params, trainable=[unet], lora_configs=lora_configs,
                            optimizer=opt, scheduler=sched, device=torch.device(args.device), group=None)
    a = torch.randn(256, 256)
    work = lambda: a @ a  # noqa: E731
    writer = getattr(state, "writer", None)
    busy_steps, idle_steps, saves = [], [], []
    t0 = time.perf_counter()
    steps = (args.saves + 1) * args.every  # as in a run: --every steps follow the last periodic save
    for n in range(steps):
        s = step(params, opt, args, work)
        (busy_steps if writer is not None and writer.busy else idle_steps).append(s)
        state.step = n + 1
        if state.step % args.every == 0 and state.step < steps:
            t = time.perf_counter()
            state.save()
            saves.append(time.perf_counter() - t)
    if writer is not None:
        writer.wait()
    with_saves = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step(params, opt, args, work)
    without = time.perf_counter() - t0
    events = [json.loads(line) for line in protocol._out.getvalue().splitlines()]
    writes = [e["seconds"] for e in events if e["type"] == "checkpoint"]
    return {"stall_s": saves, "write_s": writes, "steps_idle_median_s": statistics.median(idle_steps) if idle_steps else None,
            "steps_during_write_median_s": statistics.median(busy_steps) if busy_steps else None, "steps_during_write": len(busy_steps),
            "wall_with_saves_s": with_saves, "wall_without_s": without, "cost_per_save_s": (with_saves - without) / args.saves}


def plain_copies() -> None:
    """The snapshot's copies made blocking, into pageable memory (the alternative to pinned + non_blocking)."""
    from loraspec_worker.train import background_save

    def tensor(self, key, t, scalars_stay=False):
        t = t.detach()
        if scalars_stay and t.dim() == 0 and t.device.type != "cpu":
            return t.clone()
        return t.to("cpu", copy=True)

    background_save.HostSnapshot.tensor = tensor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", default=str(ROOT / "worker"), help="the worker package's folder whose TrainState.save is timed")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--capturable", action="store_true", help="the CUDA-graph path's capturable fused AdamW (CUDA only)")
    ap.add_argument("--saves", type=int, default=4)
    ap.add_argument("--every", type=int, default=10, help="simulated steps between saves")
    ap.add_argument("--step-s", type=float, default=0.117, help="a simulated step's length (the H200's SDXL step)")
    ap.add_argument("--sim", choices=["gpu", "cpu"], default="gpu", help="what a simulated step is (see step())")
    ap.add_argument("--python-ms", type=float, default=5.0, help="--sim gpu: the step's Python time holding the GIL")
    ap.add_argument("--plain-copy", action="store_true",
                    help="CUDA: the snapshot copies with blocking copies into pageable memory instead of non_blocking into pinned buffers")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    sys.path.insert(0, args.worker)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    if args.plain_copy:
        plain_copies()
    t = time.perf_counter()
    built = build(args.device, args.capturable)
    cfg, unet, lora_configs, params, opt, sched, items = built
    import loraspec_worker

    out = {"worker": os.path.dirname(loraspec_worker.__file__), "device": args.device, "sim": args.sim, "step_s": args.step_s, "plain_copy": args.plain_copy, "threads": torch.get_num_threads(), "build_s": time.perf_counter() - t,
           "lora_params_M": sum(p.numel() for p in params) / 1e6, "tensors": len(params)}
    out["parts"] = parts_of_one_save(cfg, unet, lora_configs, opt, sched, items)
    out["stall"] = stall(cfg, unet, lora_configs, params, opt, sched, items, args)
    print(json.dumps(out, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
    import shutil

    shutil.rmtree(cfg.output_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
