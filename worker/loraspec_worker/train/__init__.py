"""`train`: the built-in LoRA trainer (diffusers + peft) for SDXL, FLUX.1, FLUX.2 [klein], Z-Image
and Qwen-Image.

The request is written by packages/core/src/compile/diffusers.ts from a contract; its shape is
schema/worker-train-request.schema.json (config.py validates against it). The math follows
diffusers' dreambooth LoRA scripts (trainers.md §5.5): SDXL predicts the DDPM noise (or v) at a
uniform timestep; the flow models train the velocity (noise - latents) at sigma from the chosen
timestep density, on packed latents.

Layout: config (request -> Config), data (dataset, images), model (pipeline, LoRA, optimizer),
arches/ (one loss per family), loop (TrainState, train_once, train_loop), checkpoint (save/load),
runner (run, OOM fallbacks, train-rank).
"""

from .arches import ARCH_CLASSES, SDXL, Arch, FlowArch, Flux1, Flux2Klein, QwenImage, ZImage
from .checkpoint import find_latest_checkpoint, load_checkpoint, lora_metadata, lora_state_dict, save_checkpoint
from .config import NOT_YET_ARCHES, SUPPORTED_ARCHES, TARGETS, TEXT_ENCODER_TARGETS, Config, parse_config
from .data import IMAGE_EXTENSIONS, load_image, read_dataset, training_items
from .loop import TrainState, train_loop, train_once
from .steps import Diverged, check_spike
from .model import add_lora, choose_device, choose_dtype, disable_cudnn_sdpa, load_pipeline, make_optimizer, pipeline_class
from .runner import apply_fallback, run, run_rank

__all__ = [
    "ARCH_CLASSES", "SDXL", "Arch", "FlowArch", "Flux1", "Flux2Klein", "QwenImage", "ZImage",
    "find_latest_checkpoint", "load_checkpoint", "lora_metadata", "lora_state_dict", "save_checkpoint",
    "NOT_YET_ARCHES", "SUPPORTED_ARCHES", "TARGETS", "TEXT_ENCODER_TARGETS", "Config", "parse_config",
    "IMAGE_EXTENSIONS", "load_image", "read_dataset", "training_items",
    "Diverged", "TrainState", "check_spike", "train_loop", "train_once",
    "add_lora", "choose_device", "choose_dtype", "disable_cudnn_sdpa", "load_pipeline", "make_optimizer", "pipeline_class",
    "apply_fallback", "run", "run_rank",
]
