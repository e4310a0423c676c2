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
    # Dot-files are never images: macOS AppleDouble twins (._x.jpg) and hidden files, as prep and check skip them.
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    captions = _caption_files(names, caption_extension)
    items = []
    for name in names:
        stem, ext = os.path.splitext(name)
        # A symlink is never followed (it can leave the folder or loop), as the engine's listing never follows one.
        if ext.lower() not in IMAGE_EXTENSIONS or os.path.islink(os.path.join(folder, name)):
            continue
        caption = ""
        if stem in captions:
            caption = _read_caption(os.path.join(folder, captions[stem]), name)
        else:
            warning(f"no caption for {name}; training it on the trigger word alone", code="W_CAPTION_MISSING")
        if trigger and trigger not in caption:
            caption = f"{trigger}, {caption}" if caption else trigger
        items.append((os.path.join(folder, name), caption))
    if not items:
        raise WorkerError("E_DATASET_EMPTY", f"no images in {folder}", hint=f"add {'/'.join(IMAGE_EXTENSIONS)} files with {caption_extension} captions")
    return items


def _caption_files(names: list[str], caption_extension: str) -> dict[str, str]:
    """Stem -> caption file, the extension compared without case (IMG_01.TXT captions IMG_01.JPG), an
    exact-case match first: the engine's rule (packages/engine/src/dataset/caption-sidecar.ts pairSidecars)."""
    found: dict[str, str] = {}
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext.lower() == caption_extension.lower() and (stem not in found or ext == caption_extension):
            found[stem] = name
    return found


def _read_caption(path: str, image: str) -> str:
    """UTF-8 with any byte-order mark dropped; bytes that are not UTF-8 leave the image uncaptioned with a
    coded warning, as prep leaves such a caption out (caption-sidecar.ts decodeCaption)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError as error:
        warning(f"{os.path.basename(path)} is not UTF-8 text (byte {error.start}); {image} trains without it: save it as UTF-8", code="W_CAPTION_NOT_UTF8")
        return ""


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
