"""The dataset: images with caption sidecars, and one image loaded as a centre-cropped tensor (train/buckets.py crops to any bucket)."""

from __future__ import annotations

import os
from typing import Optional

from ..protocol import WorkerError, warning
from ..schema_files import builtin_trainer
from .config import Config

# What the trainer reads: core's table (knowledge/builtin-trainer.ts imageExtensions).
IMAGE_EXTENSIONS = tuple(builtin_trainer()["imageExtensions"])


def read_dataset(folder: str, trigger: Optional[str], caption_extension: str = ".txt") -> list[tuple[str, str]]:
    if not os.path.isdir(folder):
        raise WorkerError("E_DATASET_NOT_FOUND", f"dataset folder not found: {folder}")
    items = []
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        caption_path = os.path.join(folder, stem + caption_extension)
        caption = ""
        if os.path.exists(caption_path):
            with open(caption_path, encoding="utf-8") as f:
                caption = f.read().strip()
        else:
            warning(f"no caption for {name}; training it on the trigger word alone", code="W_CAPTION_MISSING")
        if trigger and trigger not in caption:
            caption = f"{trigger}, {caption}" if caption else trigger
        items.append((os.path.join(folder, name), caption))
    if not items:
        raise WorkerError("E_DATASET_EMPTY", f"no images in {folder}", hint=f"add {'/'.join(IMAGE_EXTENSIONS)} files with {caption_extension} captions")
    return items


def training_items(cfg: Config) -> list[tuple[str, str]]:
    """The dataset (trigger in front unless prefix_trigger is off) and the reg images (as written)."""
    items = read_dataset(cfg.dataset, cfg.trigger_word if cfg.prefix_trigger else None, cfg.caption_extension)
    if cfg.reg_dataset:
        items += read_dataset(cfg.reg_dataset, None, cfg.caption_extension)
    return items


def load_image(path: str, resolution: int):
    """Resize to cover a `resolution` square, center-crop it, scale to [-1, 1]: (pixels, original
    size (h, w), crop top-left). The square bucket of train/buckets.py."""
    from .buckets import load_to_bucket

    return load_to_bucket(path, {"resolution": resolution, "width": resolution, "height": resolution})
