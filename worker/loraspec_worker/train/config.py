"""Request -> Config: the built-in trainer's settings, validated (see train/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..protocol import WorkerError, require

SUPPORTED_ARCHES = ("sdxl", "flux1", "flux2-klein", "zimage", "qwen-image")
NOT_YET_ARCHES = ("flux2-dev", "sd35")
NOT_YET_WHY = {
    # diffusers 0.42 has Flux2Pipeline, but its Mistral-3 prompt processor (PixtralProcessor) needs
    # torchvision, which the worker does not pin, and no tiny test base can be built without it.
    "flux2-dev": "its Mistral-3 text processor needs torchvision, which the worker does not install",
    "sd35": "no SD3.5 loss code yet",
}

# Target modules per architecture (trainers.md §5.5, lora-formats.md §2a/§2b): attention
# projections, like diffusers' dreambooth LoRA scripts.
TARGETS = {
    "sdxl": ["to_q", "to_k", "to_v", "to_out.0"],
    "flux1": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
    "flux2-klein": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out", "to_qkv_mlp_proj"],
    "zimage": ["to_q", "to_k", "to_v", "to_out.0"],
    "qwen-image": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
}
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]

@dataclass
class Config:
    base: str
    arch: str
    dataset: str
    output_dir: str
    name: str = "lora"
    resolution: int = 1024
    rank: int = 16
    alpha: float = 16
    learning_rate: float = 1e-4
    steps: int = 1000
    batch_size: int = 1
    gradient_accumulation: int = 1
    optimizer: str = "adamw"
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    precision: str = "bf16"
    gradient_checkpointing: bool = False
    save_every: int = 0
    seed: int = 42
    trigger_word: Optional[str] = None
    prefix_trigger: bool = True
    reg_dataset: Optional[str] = None
    caption_extension: str = ".txt"
    contract_hash: Optional[str] = None
    resume_from: Optional[str] = None
    train_text_encoder: bool = False
    guidance_scale: float = 1.0
    weighting_scheme: str = "none"
    max_sequence_length: int = 512
    device: Optional[str] = None
    loss_spike_factor: Optional[float] = None
    on_oom: str = "fail"
    oom_fallbacks: list = field(default_factory=list)
    # Data-parallel processes on one host (one per GPU; distributed.py).
    num_processes: int = 1
    # Speed levers (speed.py, bench/gpu-speed.py). None = chosen by speed.choose_levers.
    compile: Optional[bool] = None
    cuda_graphs: Optional[bool] = None
    # fp8 GEMMs for the frozen base's block linears (speed.Fp8Linear matmul; needs float8 tensor cores).
    fp8_matmul: Optional[bool] = None
    # "fp8": the frozen base's block linears held in float8 (the 24 GB recipe for FLUX.1).
    quantize: str = "none"
    debug: dict = field(default_factory=dict)


def parse_config(request: dict) -> Config:
    arch = require(request, "arch", str)
    if arch in NOT_YET_ARCHES:
        raise WorkerError(
            "E_NOT_SUPPORTED",
            f"the built-in trainer does not train '{arch}' yet" + (f": {NOT_YET_WHY[arch]}" if arch in NOT_YET_WHY else ""),
            hint="use trainer ai-toolkit or fal for this model, or one of: " + ", ".join(SUPPORTED_ARCHES),
        )
    if arch not in SUPPORTED_ARCHES:
        raise WorkerError("E_USAGE", f"unknown arch '{arch}'", hint="one of: " + ", ".join(SUPPORTED_ARCHES))
    failure = request.get("failure") or {}
    known = set(Config.__dataclass_fields__)
    values = {k: v for k, v in request.items() if k in known and v is not None}
    values["base"] = require(request, "base", str)
    values["dataset"] = require(request, "dataset", str)
    values["output_dir"] = require(request, "output_dir", str)
    if "loss_spike_factor" in failure:
        values["loss_spike_factor"] = failure["loss_spike_factor"]
    if "on_oom" in failure:
        values["on_oom"] = failure["on_oom"]
    if "oom_fallbacks" in failure:
        values["oom_fallbacks"] = list(failure["oom_fallbacks"])
    cfg = Config(**values)
    for name in ("steps", "rank", "batch_size", "gradient_accumulation", "resolution", "num_processes"):
        if int(getattr(cfg, name)) < 1:
            raise WorkerError("E_USAGE", f"'{name}' must be at least 1")
    if cfg.quantize not in ("none", "fp8"):
        raise WorkerError("E_NOT_SUPPORTED", f"the built-in trainer holds the base in bf16 or fp8, not '{cfg.quantize}'",
                          hint="quantize: fp8 (or none); nf4/int8 need ai-toolkit")
    if cfg.resolution % 16:
        raise WorkerError("E_USAGE", f"resolution {cfg.resolution} must be a multiple of 16")
    return cfg


# ---------------------------------------------------------------------------------------------
# dataset
