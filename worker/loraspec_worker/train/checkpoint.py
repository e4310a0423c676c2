"""Checkpoints: the LoRA file (safetensors + kohya/modelspec metadata) and the resumable state.

A save is two halves: snapshot_checkpoint copies what the checkpoint holds off the live tensors (on
the training thread), write_checkpoint writes step-NNNNNN/<name>.safetensors then state.pt (last: a
folder without it is unfinished), on the writer thread of background_save while training goes on.
save_checkpoint does both in turn. load_checkpoint restores the LoRA, optimizer, scheduler and RNG states.
"""

from __future__ import annotations

import json
import os
import random
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .. import checkpoint_integrity
from ..protocol import WorkerError
from . import regularize
from .background_save import HostSnapshot
from .config import Config
from .metadata import kohya_metadata

# Resumable checkpoints kept (each holds the optimizer state, about twice the LoRA's size).
KEEP_STATES = 2


# Per model and prefix: each file name's parameter, as (its module, its attribute name), found once.
_NAMES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def live_lora_tensors(model, prefix: str) -> dict:
    """The LoRA's tensors under the file's names, sharing the parameters' storage. peft's state dict walks every
    module of the model (SDXL's UNet: ~7,500; most of a periodic save's stall on the training thread); which
    parameter each name is does not change once the run is set up, so the walk runs once per model and later
    calls read each parameter from its module (so a parameter replaced since is read as it is now). Names that
    are not all parameters (no cache): the walk each time."""
    cached = _NAMES.get(model, {}).get(prefix)
    if cached is not None:
        return {key: getattr(module, leaf).detach() for key, (module, leaf) in cached.items()}
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(model)
    # transformers 5 flattened CLIPTextModel (no `.text_model`); files keep the canonical
    # `text_encoder.text_model.encoder...` names (lora-formats.md §2a) that every loader reads.
    flat_clip = prefix.startswith("text_encoder") and not hasattr(model, "text_model") and hasattr(model, "encoder")
    out = {f"{prefix}.{'text_model.' if flat_clip else ''}{k}": v.detach() for k, v in state.items()}
    by_storage = {(p.data_ptr(), tuple(p.shape), p.dtype): name for name, p in model.named_parameters()}
    names = {key: by_storage.get((t.data_ptr(), tuple(t.shape), t.dtype)) for key, t in out.items()}
    if out and all(names.values()):
        where = {}
        for key, name in names.items():
            path, _, leaf = name.rpartition(".")
            where[key] = (model.get_submodule(path) if path else model, leaf)
        _NAMES.setdefault(model, {})[prefix] = where
    return out


def lora_state_dict(model, prefix: str) -> dict:
    """On the CPU (a CPU model's tensors share the parameters' storage: clone them to keep them)."""
    return {k: v.to("cpu").contiguous() for k, v in live_lora_tensors(model, prefix).items()}


def lora_metadata(cfg: Config, lora_configs: dict, step: int, items: list) -> dict:
    """diffusers' adapter metadata plus the kohya `ss_*` and `modelspec.*` keys tools read (metadata.py)."""
    from .. import __version__

    packed: dict = {}
    for prefix, config in lora_configs.items():
        d = config.to_dict()
        for k, v in d.items():
            if isinstance(v, set):
                v = sorted(v)
            packed[f"{prefix}.{k}"] = v
    meta = {
        "format": "pt",
        "lora_adapter_metadata": json.dumps(packed, indent=2, sort_keys=True, default=str),
        **kohya_metadata(cfg, items, step),
        "loraspec.version": __version__,
        "loraspec.trainer": "diffusers",
    }
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

@dataclass
class Snapshot:
    """One checkpoint's contents, copied off the live tensors: the files' bytes do not change when
    training goes on."""

    folder: str
    lora_path: str
    tensors: dict
    metadata: dict
    state: dict
    ready: Callable[[], None]  # returns once the snapshot's device-to-host copies are done


def snapshot_checkpoint(cfg, step, trainable, lora_configs, optimizer, scheduler, losses, items, ema=None, params=None,
                        host: Optional[HostSnapshot] = None) -> Snapshot:
    """The checkpoint of `step`, copied now (the training thread). With an EMA the LoRA file holds the
    shadow and state.pt the raw weights (handed back by load_checkpoint as `ema`)."""
    import numpy as np
    import torch

    host = host or HostSnapshot()
    live: dict[str, Any] = {
        "step": step,
        "losses": losses,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "config": {k: v for k, v in cfg.__dict__.items() if k != "debug"},
    }
    if ema is not None:
        live["ema"] = ema.state(params)  # the raw weights: copied before the shadow goes in below
    state = host.tree(("state",), live)
    opt = optimizer.state_dict()
    # the param groups' and the scheduler's 0-d GPU tensors stay on the GPU (background_save's docstring)
    state["optimizer"] = {k: host.tree(("optimizer", k), v, scalars_stay=k != "state") for k, v in opt.items()}
    state["scheduler"] = host.tree(("scheduler",), scheduler.state_dict(), scalars_stay=True)
    tensors = {}
    with regularize.ema_applied(ema, params):  # the checkpoint's LoRA is the EMA one
        for attr, module in zip(lora_configs, trainable):
            tensors.update({k: host.tensor(("lora", k), v) for k, v in live_lora_tensors(module, attr).items()})
    folder = os.path.join(cfg.output_dir, "checkpoints", f"step-{step:06d}")
    return Snapshot(folder=folder, lora_path=os.path.join(folder, f"{cfg.name}.safetensors"), tensors=tensors,
                    metadata=lora_metadata(cfg, lora_configs, step, items), state=state, ready=host.ready())


def write_checkpoint(snap: Snapshot) -> str:
    """Writes a snapshot's files (any thread); returns the LoRA file's path."""
    snap.ready()
    os.makedirs(snap.folder, exist_ok=True)
    atomic_save_safetensors(snap.tensors, snap.lora_path, snap.metadata)
    # state.pt is written last: a folder without it is an unfinished checkpoint and is ignored.
    atomic_torch_save(snap.state, os.path.join(snap.folder, "state.pt"))
    # Optimizer states are 2x the LoRA; only the newest KEEP_STATES stay resumable. The LoRA files
    # of older checkpoints stay (validation compares them).
    root = os.path.dirname(snap.folder)
    done = sorted(d for d in os.listdir(root) if d.startswith("step-") and os.path.exists(os.path.join(root, d, "state.pt")))
    for old in done[:-KEEP_STATES]:
        os.remove(os.path.join(root, old, "state.pt"))
        checkpoint_integrity.remove_checksum(os.path.join(root, old, "state.pt"))
    return snap.lora_path


def save_checkpoint(cfg, step, trainable, lora_configs, optimizer, scheduler, losses, items, ema=None, params=None) -> str:
    """A checkpoint written before returning (the snapshot, then its files)."""
    return write_checkpoint(snapshot_checkpoint(cfg, step, trainable, lora_configs, optimizer, scheduler, losses, items, ema, params))


def load_state(path: str) -> dict:
    """state.pt read as data only: tensors, numbers, strings and the RNG states (numpy's is an array). A
    checkpoint folder may come from anywhere (a shared run, a download): torch.load's full unpickler would
    run whatever code the file names, so any other object is refused with E_CHECKPOINT_INVALID."""
    import pickle

    import numpy as np
    import torch

    reconstruct = (getattr(np, "_core", None) or np.core).multiarray._reconstruct  # numpy 2 / numpy 1
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise WorkerError(
            "E_CHECKPOINT_INVALID",
            f"{path} holds objects a loraspec checkpoint never holds ({str(e).splitlines()[0][:160]}); it was not loaded",
            hint="resume from a checkpoint this run wrote (resume_from: latest), or start a new run",
        ) from None


def keep_lr_kind(optimizer, built_lrs: list) -> None:
    """A checkpoint's learning rates in the kind this run's optimizer was built with. The CUDA graph's
    capturable AdamW holds each group's lr as a device tensor that the captured step reads and the LR
    scheduler fills in place; a checkpoint written by an eager run holds floats (and the reverse), and
    load_state_dict would put them in as they are: a float under a graph is baked into the capture (the
    schedule silently stops), a tensor lr in a plain foreach AdamW is refused. The value is the checkpoint's."""
    import torch

    for group, built in zip(optimizer.param_groups, built_lrs):
        loaded = group["lr"]
        if torch.is_tensor(built):
            with torch.no_grad():
                built.fill_(float(loaded))  # the same tensor object the optimizer (and any graph) was built on
            group["lr"] = built
        elif torch.is_tensor(loaded):
            group["lr"] = float(loaded.item())


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
    state = load_state(state_path)
    if saved is not None:
        saved.update(state)
    built_lrs = [g["lr"] for g in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    keep_lr_kind(optimizer, built_lrs)
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
