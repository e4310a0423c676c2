"""Aspect-ratio buckets: core decides the set (packages/core/src/plan/buckets.ts, the request's
`buckets`); here each image is put in its bucket, resized to cover it and center-cropped, and each
batch is drawn from one bucket (one latent shape per step)."""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor

from ..images import MAX_IMAGE_PIXELS, open_bounded as _open_bounded, open_rgb  # noqa: F401 - MAX_IMAGE_PIXELS re-exported for tests
from ..protocol import WorkerError, emit
from . import regularize


def assign_bucket(width: int, height: int, buckets: list[dict]) -> dict:
    """The bucket whose aspect (width / height) is nearest the image's, the first on a tie: core's
    assignBucket (sd-scripts' BucketManager.select_bucket)."""
    aspect = width / height
    best, best_error = buckets[0], abs(buckets[0]["width"] / buckets[0]["height"] - aspect)
    for b in buckets[1:]:
        error = abs(b["width"] / b["height"] - aspect)
        if error < best_error:
            best, best_error = b, error
    return best


def by_resolution(buckets: list[dict]) -> "OrderedDict[int, list[dict]]":
    """The request's buckets grouped by training resolution, in the request's order."""
    groups: OrderedDict[int, list[dict]] = OrderedDict()
    for b in buckets:
        groups.setdefault(b["resolution"], []).append(b)
    return groups


# EXIF orientations that swap width and height (5-8: transposed, rotated 90 or 270 degrees).
_EXIF_ORIENTATION, _SWAPS_SIDES = 0x0112, (5, 6, 7, 8)


# The run stops at an image it cannot decode; prep leaves such files out, and the run then trains on its folder.
UNREADABLE_HINT = "run `loraspec prep` (it leaves out images it cannot decode; the run then trains on its folder), or remove or re-export the file"

# Core's pixel limit, applied by the worker's one opener (images.py): an image check passes opens here, one over it
# is E_IMAGE_UNREADABLE.


def _open(path: str):
    """The image as training pixels (images.open_rgb: upright, transparent pixels flattened onto core's colour, RGB)."""
    try:
        return open_rgb(path)
    except Exception as e:  # noqa: BLE001
        raise WorkerError("E_IMAGE_UNREADABLE", f"cannot read {path}: {e}", hint=UNREADABLE_HINT) from None


def image_size(path: str) -> tuple[int, int]:
    """(width, height) upright (after EXIF orientation, as core's probe reports it), from the file
    header without decoding the pixels: a phone's portrait stored sideways buckets as a portrait."""
    try:
        with _open_bounded(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception as e:  # noqa: BLE001
        raise WorkerError("E_IMAGE_UNREADABLE", f"cannot read {path}: {e}", hint=UNREADABLE_HINT) from None
    return (height, width) if orientation in _SWAPS_SIDES else (width, height)


def crop_to_bucket(image, width: int, height: int):
    """Resize `image` (PIL, RGB) to cover width x height (bicubic), center-crop to it, scale to [-1, 1].
    Returns (pixels CHW, original_size (h, w) before the resize, crop top-left (top, left) in the
    resized image): SDXL's micro-conditioning, as diffusers' SDXL LoRA script computes it."""
    import numpy as np
    import torch
    from PIL import Image

    ow, oh = image.size
    scale = max(width / ow, height / oh)
    rw, rh = max(width, round(ow * scale)), max(height, round(oh * scale))
    resized = image.resize((rw, rh), Image.BICUBIC)
    left, top = (rw - width) // 2, (rh - height) // 2
    cropped = resized.crop((left, top, left + width, top + height))
    array = np.asarray(cropped, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1), (oh, ow), (top, left)


def load_to_bucket(path: str, bucket: dict):
    """One image cropped to its bucket: (pixels, original_size, crop)."""
    return crop_to_bucket(_open(path), bucket["width"], bucket["height"])


def plan_entries(items: list[tuple[str, str]], buckets: list[dict]) -> list[tuple[int, dict]]:
    """(item index, bucket) for every training entry: each item once per resolution, in its nearest
    bucket of that resolution's set."""
    groups = by_resolution(buckets)
    sizes = [image_size(path) for path, _ in items] if any(len(g) > 1 for g in groups.values()) else None
    out = []
    for group in groups.values():
        for i in range(len(items)):
            out.append((i, group[0] if sizes is None else assign_bucket(*sizes[i], group)))
    return out


class BucketSampler:
    """Draws each micro-batch from one bucket (one latent shape). With one bucket it draws exactly as
    the single-crop trainer did (batch_size uniform indices), so square runs are unchanged; with
    several, a uniformly drawn entry picks the bucket (buckets come up in proportion to their size),
    then the batch is drawn uniformly within it. Deterministic for a given torch generator."""

    def __init__(self, shapes: list[tuple[int, int]]):
        self.members: OrderedDict[tuple[int, int], list[int]] = OrderedDict()
        for i, shape in enumerate(shapes):
            self.members.setdefault(shape, []).append(i)
        self.shape_of = shapes

    def __len__(self) -> int:
        return len(self.members)

    def draw(self, batch_size: int, generator) -> list[int]:
        import torch

        if len(self.members) == 1:
            members = next(iter(self.members.values()))
        else:
            first = int(torch.randint(0, len(self.shape_of), (1,), generator=generator).item())
            members = self.members[self.shape_of[first]]
        return [members[i] for i in torch.randint(0, len(members), (batch_size,), generator=generator).tolist()]

    def summary(self) -> str:
        return ", ".join(f"{w}x{h}: {len(m)}" for (w, h), m in self.members.items())


def cache_entries(cfg, arch, items: list[tuple[str, str]], on_progress=None) -> list[dict]:
    """Every entry's latents, encoded at its bucket's shape, with its caption's encoding (once per
    image, shared across resolutions) and SDXL's time ids (original size, crop top-left, target
    size, in pixels). Call under torch.no_grad()."""
    entries = plan_entries(items, cfg.buckets)
    texts: dict[int, dict] = {}
    cache = []
    decoded = prefetched(load_to_bucket, [(items[i][0], bucket) for i, bucket in entries])
    started, waited = time.perf_counter(), 0.0
    for n, (i, bucket) in enumerate(entries):
        t = time.perf_counter()
        pixels, original_size, crop = next(decoded)
        waited += time.perf_counter() - t
        caption = items[i][1]
        latents = arch.encode_images(pixels.unsqueeze(0))
        if not regularize.encodes_per_step(cfg) and i not in texts:  # shuffled tags are encoded each step
            texts[i] = {k: [e.detach() for e in v] if isinstance(v, list) else v.detach() for k, v in arch.encode_text([caption]).items()}
        time_ids = [*original_size, *crop, bucket["height"], bucket["width"]]
        cache.append({"latents": latents.detach(), "text": texts.get(i), "caption": caption, "extra": {"time_ids": [time_ids]},
                      "shape": (bucket["width"], bucket["height"])})
        if on_progress:
            on_progress(n + 1, len(entries))
    emit({"type": "log", "level": "info", "message": f"cached {len(entries)} entries in {time.perf_counter() - started:.2f} s "
                                                     f"({waited:.2f} s of it waiting for decoded images, the rest encoding)"})
    return cache


def prefetched(fn, calls: list[tuple], ahead: int = 0):
    """fn(*args) for each args of `calls`, in order, each computed in a thread up to `ahead` calls before it
    is taken (default: the cores less one, at most 4), so that decoding the next images (PIL and numpy
    release the GIL) overlaps the encoding of this one on the device. At most `ahead` results wait in
    memory; an error is raised when its call's turn comes, as a plain loop would."""
    ahead = ahead or max(1, min(4, (os.cpu_count() or 2) - 1))
    pending_calls = iter(calls)
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="loraspec-decode") as pool:
        pending = deque(pool.submit(fn, *args) for args in itertools.islice(pending_calls, ahead))
        try:
            while pending:
                future = pending.popleft()
                following = next(pending_calls, None)
                if following is not None:
                    pending.append(pool.submit(fn, *following))
                yield future.result()
        finally:  # the caller stopped early (an error): what has not started never will
            for future in pending:
                future.cancel()
