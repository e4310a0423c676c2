"""The LoRA file's header: diffusers' adapter config plus the `ss_*` and `modelspec.*` keys Kohya's
sd-scripts writes (train_network.py L1004-L1197, library/sai_model_spec.py), so `loraspec inspect`,
A1111/Forge's metadata panes and Civitai read our file like one from Kohya. Values are strings, as
safetensors requires (lora-formats.md §1.1); Python reprs where Kohya writes them (`str(v)`)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .config import TABLE, Config
from .network import network_args

# Set once per process, like Kohya's session id and start time (one run = one session).
_SESSION = {"id": None, "started": None}


def tag_frequency(captions: list[str]) -> dict[str, int]:
    """Kohya's count: each caption split on commas, stripped, lower-cased, counted once per
    occurrence (library/train_util.py L800-L809 set_tag_frequency)."""
    counts: dict[str, int] = {}
    for caption in captions:
        for tag in caption.split(","):
            tag = tag.strip().lower()
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return counts


def start_session() -> None:
    """A new session at the start of training, as Kohya takes its id and ss_training_started_at before
    the loop (train_network.py): taken at the first save instead, a run that saves only at the end wrote
    the same second as its start and finish."""
    import random

    _SESSION["id"] = random.SystemRandom().randint(0, 2**32)
    _SESSION["started"] = int(time.time())


def _session() -> tuple[int, int]:
    import random

    if _SESSION["id"] is None:
        _SESSION["id"] = random.SystemRandom().randint(0, 2**32)
        _SESSION["started"] = int(time.time())
    return _SESSION["id"], _SESSION["started"]


def kohya_metadata(cfg: Config, items: list, step: int) -> dict[str, str]:
    """ss_* and modelspec.* for a file saved at `step`; `items` are the run's (image path, caption)."""
    session, started = _session()
    arch = TABLE["fileMetadata"][cfg.arch]
    network = network_args(cfg)
    folder = os.path.basename(os.path.normpath(cfg.dataset)) or "dataset"
    captions = [caption for _path, caption in items]
    meta: dict[str, Any] = {
        "ss_session_id": session,
        "ss_training_started_at": started,
        "ss_training_finished_at": int(time.time()),
        "ss_output_name": cfg.name,
        "ss_v2": False,
        "ss_base_model_version": arch["ssBaseModelVersion"],
        "ss_network_module": network["module"],
        "ss_network_dim": cfg.rank,
        "ss_network_alpha": cfg.alpha,
        "ss_network_args": json.dumps(network["args"]),
        "ss_learning_rate": cfg.learning_rate,
        "ss_unet_lr": cfg.learning_rate,
        "ss_max_train_steps": cfg.steps,
        "ss_steps": step,
        "ss_lr_scheduler": cfg.lr_scheduler,
        "ss_lr_warmup_steps": cfg.warmup_steps,
        "ss_optimizer": cfg.optimizer,
        "ss_seed": cfg.seed,
        "ss_mixed_precision": cfg.precision,
        "ss_gradient_checkpointing": cfg.gradient_checkpointing,
        "ss_gradient_accumulation_steps": cfg.gradient_accumulation,
        "ss_batch_size_per_device": cfg.batch_size,
        "ss_resolution": f"({cfg.resolution}, {cfg.resolution})",
        "ss_num_train_images": len(items),
        "ss_sd_model_name": cfg.base,
        "ss_tag_frequency": json.dumps({folder: tag_frequency(captions)}),
        "ss_dataset_dirs": json.dumps({folder: {"n_repeats": 1, "img_count": len(items)}}),
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": f"{arch['architecture']}/lora",
        "modelspec.implementation": arch["implementation"],
        "modelspec.title": cfg.name,
        "modelspec.resolution": f"{cfg.resolution}x{cfg.resolution}",
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    }
    if cfg.trigger_word:
        meta["modelspec.trigger_phrase"] = cfg.trigger_word
    return {k: str(v) for k, v in meta.items()}
