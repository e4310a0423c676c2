"""Where a training step's GPU time goes (bench/gpu-speed.py --profile N): N more steps of a row under
torch.profiler, summed per kernel and per aten op. An eager row's matmuls carry their input shapes, so
the LoRA's own GEMMs (a dimension equal to the LoRA rank) are told apart from the frozen base's; a row
replayed from a CUDA graph shows kernels only (no aten ops run on replay)."""

from __future__ import annotations

from typing import Callable

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear", "aten::_scaled_mm")
CAST_OPS = ("aten::_to_copy",)  # a dtype cast (x.to(dtype)); its copy kernel is aten::copy_ under it
TOP = 25


def _is_lora(shapes, rank: int) -> bool:
    return any(isinstance(s, (list, tuple)) and rank in s for s in shapes or [])


def _self_us(event, on: str) -> float:
    return float(getattr(event, "self_cpu_time_total" if on == "cpu" else "self_device_time_total", 0.0))


def summarize(prof, steps: int, rank: int, on: str = "cuda") -> dict:
    """Per step, in ms: every kernel's time (the GPU's busy time), the top kernels, and for aten ops
    (eager rows) the matmul time split into the LoRA's GEMMs and the base's."""
    from torch.autograd import DeviceType

    kernels: dict[str, float] = {}
    for e in prof.events():
        if e.device_type == DeviceType.CUDA:  # a kernel (or memcpy/memset) as the GPU ran it
            kernels[e.name] = kernels.get(e.name, 0.0) + e.time_range.elapsed_us()
    busy_us = sum(kernels.values())
    ops = prof.key_averages(group_by_input_shape=True)
    lora_mm = base_mm = 0.0
    lora_calls = 0
    casts = {"lora_weight": 0, "other": 0}  # dtype casts: of a LoRA weight (the rank in its shape) or of anything else (inputs, outputs)
    per_op: dict[str, float] = {}
    for ev in ops:
        us = _self_us(ev, on)
        per_op[ev.key] = per_op.get(ev.key, 0.0) + us
        if ev.key in CAST_OPS:
            casts["lora_weight" if _is_lora(getattr(ev, "input_shapes", None), rank) else "other"] += ev.count
        if ev.key in MATMUL_OPS:
            if _is_lora(getattr(ev, "input_shapes", None), rank):
                lora_mm += us
                lora_calls += ev.count
            else:
                base_mm += us
    ms = lambda us: round(us / 1000 / steps, 3)  # noqa: E731
    top_k = sorted(kernels.items(), key=lambda kv: -kv[1])[:TOP]
    top_ops = sorted(per_op.items(), key=lambda kv: -kv[1])[:TOP]
    return {
        "profile_steps": steps, "gpu_busy_ms_per_step": ms(busy_us),
        "lora_matmul_ms_per_step": ms(lora_mm), "lora_matmul_calls_per_step": lora_calls // max(steps, 1),
        "base_matmul_ms_per_step": ms(base_mm),
        "cast_calls_per_step": {k: n // max(steps, 1) for k, n in casts.items()},
        "top_kernels_ms_per_step": [[name[:120], ms(us)] for name, us in top_k],
        "top_ops_self_ms_per_step": [[name, ms(us)] for name, us in top_ops if us > 0],
    }


def profile(step: Callable[[int], object], steps: int, rank: int, first_step: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for i in range(steps):
            step(first_step + i)
        torch.cuda.synchronize()
    return summarize(prof, steps, rank)
