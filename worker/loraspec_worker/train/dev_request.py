"""A complete train request for tools that build one by hand (worker tests, bench/gpu-speed.py, the
toy world). The product never uses it: core's compiler writes every request the CLI runs
(compile/diffusers.ts), and parse_config refuses one that leaves a setting out."""

from __future__ import annotations

from typing import Any

from .config import TABLE, TARGETS

DEV_SETTINGS: dict[str, Any] = {
    "name": "lora",
    "resolution": 1024,
    "rank": 16,
    "alpha": 16,
    "learning_rate": 1e-4,
    "steps": 1000,
    "batch_size": 1,
    "gradient_accumulation": 1,
    "optimizer": "adamw",
    "lr_scheduler": "constant",
    "warmup_steps": 0,
    "precision": "bf16",
    "gradient_checkpointing": False,
    "checkpointing_mode": "full",
    "compile": False,
    "cuda_graphs": False,
    "channels_last": False,
    "fp8_matmul": False,
    "attention": "sdpa",
    "lora_compute": "fp32",
    "sample_merge": "none",  # samples on the LoRA path unless a test names buffers or per_call (core decides for real requests)
    "quantize": "none",
    "num_processes": 1,
    "save_every": 0,
    "seed": 42,
    "trigger_word": "txcl",
    "prefix_trigger": True,
    "caption_extension": ".txt",
    "train_text_encoder": False,
    "guidance_scale": 1.0,
    "timestep_sampling": "uniform",
    "max_sequence_length": 512,
    "caption_dropout": 0,
    "shuffle_tags": False,
    "noise_offset": 0,
    "min_snr_gamma": None,
    "ema_decay": None,
    "network_type": "lora",
    "network_factor": -1,
}
_SPIKE = TABLE["lossSpike"]  # core's loss-spike record (knowledge/loss-spike.ts), as compile/diffusers.ts sends it
DEV_FAILURE = {
    "loss_spike_factor": _SPIKE["factor"],
    "loss_spike_recent_steps": _SPIKE["recentSteps"],
    "loss_spike_baseline_steps": _SPIKE["baselineSteps"],
    "loss_spike_first_step": _SPIKE["firstStep"],
    "on_oom": "fail",
    "oom_fallbacks": [],
}


def dev_request(**fields: Any) -> dict:
    """DEV_SETTINGS, the arch's targets, then `fields` (base, arch, dataset, output_dir at least;
    a partial `failure` is merged into DEV_FAILURE)."""
    request = {**DEV_SETTINGS, **{k: v for k, v in fields.items() if k != "failure" and v is not None}}
    request.setdefault("targets", TARGETS.get(request.get("arch"), ["to_q"]))
    # One square bucket at the resolution (the center crop), as core compiles aspect: square.
    res = request.get("resolution")
    request.setdefault("buckets", [{"resolution": res, "width": res, "height": res}])
    request["failure"] = {**DEV_FAILURE, **(fields.get("failure") or {})}
    return request


def dev_config(**fields: Any):
    """A validated Config from dev_request (unit tests of one piece: a loss, a lever)."""
    from .config import parse_config

    return parse_config(dev_request(**{"base": "-", "dataset": "-", "output_dir": "-", **fields}))
