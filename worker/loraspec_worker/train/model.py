"""Loading the base pipeline, device and dtype, LoRA adapters and the optimizer."""

from __future__ import annotations

import os

from ..protocol import WorkerError, warning
from .config import TABLE, Config
from .model_index import listed_components

# arch -> its diffusers pipeline class, by name: diffusers imports a pipeline's module (and the
# transformers models it needs) when the class is first looked up, so only the run's arch is imported
# (a dict of the classes themselves imported all five: Qwen2.5-VL, Mistral, ... for an SDXL run).
PIPELINES = {
    "sdxl": "StableDiffusionXLPipeline",
    "flux1": "FluxPipeline",
    "flux2-klein": "Flux2KleinPipeline",
    "zimage": "ZImagePipeline",
    "qwen-image": "QwenImagePipeline",
}


def pipeline_class(arch: str):
    name = PIPELINES[arch]  # an unknown arch: KeyError, as before (parse_config refuses it first)
    import diffusers

    return getattr(diffusers, name)


# What each component model_index.json lists must have in its folder, by class: core's table (knowledge/
# base-load-forms.ts DIFFUSERS_COMPONENT_FILES, check's preflight reads it too), loaded from schema/builtin-trainer.json.
# diffusers' own error for a missing one names only "config.json" and the folder, not the component.
_COMPONENT_FILES = TABLE["componentFiles"]


def folder_problems(base: str) -> list[str]:
    """Each component a diffusers folder's model_index.json lists whose folder, config or weights are not there."""
    import json

    try:
        with open(os.path.join(base, "model_index.json"), encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        return [f"model_index.json ({e})"]
    problems = []
    for name, cls in listed_components(index):
        kind = next(k for k in _COMPONENT_FILES["kinds"] if not k["classSuffixes"] or cls.endswith(tuple(k["classSuffixes"])))
        files, weights = kind["anyOf"], kind["weights"]
        folder = os.path.join(base, name)
        if not os.path.isdir(folder):
            problems.append(f"{name}/ ({cls}) is missing")
            continue
        entries = os.listdir(folder)
        if not any(n in entries for n in files):
            problems.append(f"{name}/ ({cls}) has no {' or '.join(files)}")
        elif weights and not any(e.endswith(tuple(_COMPONENT_FILES["weightSuffixes"])) for e in entries):
            problems.append(f"{name}/ ({cls}) has no weights")
    return problems


def load_pipeline(base: str, arch: str, dtype):
    """A HF id, a local diffusers folder, or a single checkpoint file: loaded for real."""
    looks_like_path = base.startswith((".", "/", "~")) or os.sep + os.sep in base or base.count("/") > 1 or "\\" in base
    if looks_like_path and not os.path.exists(base):
        raise WorkerError("E_FILE_NOT_FOUND", f"base model not found: {base}", hint="point base at a diffusers folder, a .safetensors file, or a Hugging Face id like org/name")
    if os.path.isdir(base) and os.path.exists(os.path.join(base, "model_index.json")):
        problems = folder_problems(base)
        if problems:
            raise WorkerError("E_FILE_NOT_FOUND", f"base model folder {base} is not whole: {'; '.join(problems)}", hint="download the whole model again (every folder model_index.json lists), or use its Hugging Face id; `loraspec check` says this before a run")
    cls = pipeline_class(arch)
    try:
        if os.path.isfile(base):
            if not hasattr(cls, "from_single_file"):
                raise WorkerError("E_NOT_SUPPORTED", f"{arch} cannot load a single-file checkpoint yet", hint="point base at a diffusers folder or a HF id")
            return cls.from_single_file(base, torch_dtype=dtype)
        if os.path.isdir(base) and not os.path.exists(os.path.join(base, "model_index.json")):
            raise WorkerError("E_FILE_NOT_FOUND", f"{base} is not a diffusers model folder (no model_index.json)")
        return cls.from_pretrained(base, torch_dtype=dtype)
    except WorkerError:
        raise
    except OSError as e:
        raise WorkerError(
            "E_FILE_NOT_FOUND",
            f"cannot load base model '{base}': {str(e).splitlines()[0]}",
            hint="check the path or HF id; gated models need `huggingface-cli login`; offline runs need the model in the HF cache",
        ) from None


def disable_cudnn_sdpa() -> None:
    """cuDNN's SDPA backend gave NaN gradients on FLUX attention shapes (tiny FLUX.1 and FLUX.2
    [klein] on an H200, torch 2.11+cu130: loss NaN at step 2; the flash/efficient kernels are
    fine), so training and sampling use the other backends."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def choose_device(cfg: Config):
    import torch

    if cfg.device:
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def start_cuda_context(cfg: Config, local_rank: int = 0):
    """Creates the run's CUDA context in a daemon thread, so that it overlaps the main thread's import of
    diffusers (the first allocation on a device creates its context: torch releases the GIL while it
    allocates). Returns the thread (join it before the device is used) or None where the run is not on
    CUDA. A fault here is left to the main thread's own first CUDA call to report, with its own error."""
    import threading

    import torch

    if cfg.device and not cfg.device.startswith("cuda"):
        return None
    asked = torch.device(cfg.device or "cuda")
    index = asked.index if asked.index is not None else local_rank

    def create() -> None:
        try:
            if torch.cuda.is_available():
                torch.empty(1, device=torch.device("cuda", index))
        except Exception:  # noqa: BLE001 - reported by the main thread's first CUDA call
            pass

    thread = threading.Thread(target=create, name="loraspec-cuda-context", daemon=True)
    thread.start()
    return thread


PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def choose_dtype(cfg: Config, device):
    """The base's dtype: the request's precision; on the CPU fp32 (half-precision matmuls are slow
    there and some kernels are missing), refused with a coded warning. LoRA parameters are fp32."""
    import torch

    wanted = getattr(torch, PRECISIONS[cfg.precision])
    if device.type == "cpu" and wanted is not torch.float32:
        warning(f"precision {cfg.precision} is off for this run: the base runs in fp32 on the CPU", code=TABLE["refusals"]["precision"])
        return torch.float32
    return wanted


def precision_name(dtype) -> str:
    """torch dtype -> the request's precision name."""
    return next(k for k, v in PRECISIONS.items() if str(dtype) == f"torch.{v}")


def add_lora(model, cfg: Config, targets: list[str]):
    from .network import adapter_config

    from .targets import peft_target_modules

    config = adapter_config(cfg, peft_target_modules(targets))  # the request's network_type: LoRA, DoRA, LoKr or LoHa
    model.add_adapter(config)
    return config


def _adamw(cfg: Config, params, device):
    import torch

    # One fused kernel for all LoRA tensors on CUDA (the foreach default launches per group).
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8, **fused)


def _adamw8bit(cfg: Config, params, device):
    if device.type != "cuda":
        raise WorkerError("E_NOT_SUPPORTED", "adamw8bit needs a CUDA GPU (bitsandbytes)", hint="use optimizer: adamw on this machine")
    try:
        import bitsandbytes as bnb  # noqa: PLC0415
    except ImportError:
        raise WorkerError("E_NOT_SUPPORTED", "adamw8bit needs bitsandbytes", hint="worker/.venv/bin/pip install bitsandbytes, or use adamw") from None
    return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)


def _adafactor(cfg: Config, params, device):
    from transformers.optimization import Adafactor

    return Adafactor(params, lr=cfg.learning_rate, scale_parameter=False, relative_step=False, warmup_init=False)


def _prodigy(cfg: Config, params, device):
    try:
        import prodigyopt  # noqa: PLC0415
    except ImportError:
        raise WorkerError("E_NOT_SUPPORTED", "prodigy needs the prodigyopt package", hint="worker/.venv/bin/pip install prodigyopt, or use adamw") from None
    return prodigyopt.Prodigy(params, lr=cfg.learning_rate, weight_decay=1e-4)


# The optimizers the worker builds: the table's `optimizers` (test_sync.py holds them equal).
OPTIMIZERS = {"adamw": _adamw, "adamw8bit": _adamw8bit, "adafactor": _adafactor, "prodigy": _prodigy}


def make_optimizer(cfg: Config, params, device):
    build = OPTIMIZERS.get(cfg.optimizer)
    if build is None:  # the request schema admits only the table's optimizers
        raise WorkerError("E_USAGE", f"unknown optimizer '{cfg.optimizer}'", hint=", ".join(OPTIMIZERS))
    return build(cfg, params, device)
