"""Checkpoints: the LoRA file (safetensors + kohya/modelspec metadata) and the resumable state.

save_checkpoint writes step-NNNNNN/<name>.safetensors then state.pt (last: a folder without it is
unfinished); load_checkpoint restores the LoRA, optimizer, scheduler and RNG states.
"""

from __future__ import annotations

import json
import os
import random
from typing import Optional

from .. import checkpoint_integrity
from ..protocol import WorkerError
from . import regularize
from .config import Config

# Resumable checkpoints kept (each holds the optimizer state, about twice the LoRA's size).
KEEP_STATES = 2


def lora_state_dict(model, prefix: str) -> dict:
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(model)
    # transformers 5 flattened CLIPTextModel (no `.text_model`); files keep the canonical
    # `text_encoder.text_model.encoder...` names (lora-formats.md §2a) that every loader reads.
    flat_clip = prefix.startswith("text_encoder") and not hasattr(model, "text_model") and hasattr(model, "encoder")
    return {f"{prefix}.{'text_model.' if flat_clip else ''}{k}": v.detach().to("cpu").contiguous() for k, v in state.items()}


def lora_metadata(cfg: Config, lora_configs: dict, step: int, n_images: int) -> dict:
    """diffusers' adapter metadata plus the kohya `ss_*` and `modelspec.*` keys tools read."""
    from .. import __version__

    packed: dict = {}
    for prefix, config in lora_configs.items():
        d = config.to_dict()
        for k, v in d.items():
            if isinstance(v, set):
                v = sorted(v)
            packed[f"{prefix}.{k}"] = v
    arch_names = {"sdxl": "stable-diffusion-xl-v1-base/lora", "flux1": "Flux.1-dev/lora", "flux2-klein": "Flux.2-klein/lora", "zimage": "Z-Image/lora", "qwen-image": "Qwen-Image/lora"}
    meta = {
        "format": "pt",
        "lora_adapter_metadata": json.dumps(packed, indent=2, sort_keys=True, default=str),
        "ss_network_module": "peft.lora",
        "ss_network_dim": str(cfg.rank),
        "ss_network_alpha": str(cfg.alpha),
        "ss_learning_rate": str(cfg.learning_rate),
        "ss_max_train_steps": str(cfg.steps),
        "ss_steps": str(step),
        "ss_resolution": f"({cfg.resolution}, {cfg.resolution})",
        "ss_num_train_images": str(n_images),
        "ss_optimizer": cfg.optimizer,
        "ss_lr_scheduler": cfg.lr_scheduler,
        "ss_seed": str(cfg.seed),
        "ss_base_model_version": cfg.arch,
        "ss_sd_model_name": cfg.base,
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": arch_names[cfg.arch],
        "modelspec.implementation": "diffusers",
        "modelspec.title": cfg.name,
        "modelspec.resolution": f"{cfg.resolution}x{cfg.resolution}",
        "loraspec.version": __version__,
        "loraspec.trainer": "diffusers",
    }
    if cfg.trigger_word:
        meta["modelspec.trigger_phrase"] = cfg.trigger_word
        meta["ss_tag_frequency"] = json.dumps({"dataset": {cfg.trigger_word: n_images}})
    if cfg.contract_hash:
        meta["loraspec.contract_hash"] = cfg.contract_hash
    meta.update(regularize.kohya_metadata(cfg))
    return meta


def atomic_save_safetensors(tensors: dict, path: str, metadata: dict) -> None:
    from safetensors.torch import save_file

    checkpoint_integrity.atomic_save(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def atomic_torch_save(obj, path: str) -> None:
    import torch

    checkpoint_integrity.atomic_save(path, lambda tmp: torch.save(obj, tmp))


def find_latest_checkpoint(output_dir: str) -> Optional[str]:
    """The newest checkpoint whose files verify against their checksums (a corrupt one is skipped with a warning)."""
    return checkpoint_integrity.newest_good_checkpoint(output_dir)


# ---------------------------------------------------------------------------------------------
# the run

def save_checkpoint(cfg, step, trainable, lora_configs, optimizer, scheduler, losses, n_images, extra=None) -> str:
    """`extra` (e.g. the EMA's raw weights) is kept in state.pt and handed back by load_checkpoint."""
    import numpy as np
    import torch

    folder = os.path.join(cfg.output_dir, "checkpoints", f"step-{step:06d}")
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for attr, module in zip(lora_configs, trainable):
        tensors.update(lora_state_dict(module, attr))
    lora_path = os.path.join(folder, f"{cfg.name}.safetensors")
    atomic_save_safetensors(tensors, lora_path, lora_metadata(cfg, lora_configs, step, n_images))
    state = {
        "step": step,
        "losses": losses,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "config": {k: v for k, v in cfg.__dict__.items() if k != "debug"},
        **(extra or {}),
    }
    # state.pt is written last: a folder without it is an unfinished checkpoint and is ignored.
    atomic_torch_save(state, os.path.join(folder, "state.pt"))
    # Optimizer states are 2x the LoRA; only the newest KEEP_STATES stay resumable. The LoRA files
    # of older checkpoints stay (validation compares them).
    root = os.path.dirname(folder)
    done = sorted(d for d in os.listdir(root) if d.startswith("step-") and os.path.exists(os.path.join(root, d, "state.pt")))
    for old in done[:-KEEP_STATES]:
        os.remove(os.path.join(root, old, "state.pt"))
        checkpoint_integrity.remove_checksum(os.path.join(root, old, "state.pt"))
    return lora_path


def load_checkpoint(folder, trainable, lora_configs, optimizer, scheduler, saved=None):
    """Restores the LoRA, optimizer, scheduler and RNG states; `saved` (a dict) receives state.pt's entries."""
    import numpy as np
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    if os.path.isdir(os.path.join(folder, "checkpoints")):  # a run's output folder: its latest checkpoint
        latest = find_latest_checkpoint(folder)
        if latest is None:
            raise WorkerError("E_FILE_NOT_FOUND", f"no finished checkpoint under {folder}")
        folder = latest
    state_path = os.path.join(folder, "state.pt")
    if not os.path.exists(state_path):
        raise WorkerError("E_FILE_NOT_FOUND", f"no finished checkpoint in {folder} (state.pt missing)")
    files = [f for f in os.listdir(folder) if f.endswith(".safetensors")]
    tensors = load_file(os.path.join(folder, files[0]))
    for attr, module in zip(lora_configs, trainable):
        prefix = attr + "."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not hasattr(module, "text_model"):
            sub = {k.removeprefix("text_model."): v for k, v in sub.items()}
        try:
            result = set_peft_model_state_dict(module, sub)
        except RuntimeError as e:
            raise WorkerError(
                "E_LORA_SHAPE_MISMATCH",
                f"checkpoint {folder} does not fit this run (a different rank or base?): {str(e).splitlines()[0][:200]}",
                hint="resume with the rank and base the checkpoint was trained with, or start a new run",
            ) from None
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise WorkerError("E_LORA_SHAPE_MISMATCH", f"checkpoint has keys this model does not: {unexpected[:3]}")
    state = torch.load(state_path, weights_only=False)
    if saved is not None:
        saved.update(state)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state.get("rng") or {}
    if rng.get("torch") is not None:
        torch.set_rng_state(rng["torch"])
    if rng.get("python") is not None:
        random.setstate(rng["python"])
    if rng.get("numpy") is not None:
        np.random.set_state(rng["numpy"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"]), list(state.get("losses", []))
