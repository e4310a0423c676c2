"""--outline-weight's masks (issue 23): where the prompted shape differs from the other shapes.

The toy FLUX.1 base draws the average shape, a blob (bench/RESULTS.md, "What limits the toy
FLUX.1 base's shapes"), and the object-weighted loss counts the outline no more than the fill. Shape
is the one attribute the outline carries, so the band weighs, per pixel of each object:
  - |own coverage - the mean coverage of all SHAPES drawn at the same place, size and rotation|:
    0 where every shape covers (the blob's core) or none does, large where the prompted shape
    alone covers (a star's points) or alone leaves bare (between them);
  - 1 on the object's edge band (EDGE_PX either side of the outline: dilated XOR eroded mask),
    so a shape close to the average (the circle) still has its outline weighed.
The geometry is the world's own (world.object_coverage), for the base world's scenes by seed as
train_base.make_base_dataset draws them; bands are stored as uint8 (255 = 1) like the masks.
"""

from __future__ import annotations

import dataclasses
import time

from . import world

EDGE_PX = 1  # px either side of the outline (a 2 px band): the outline lies between the pixels of both sides
CHUNK = 1000  # scenes per render task, as make_base_dataset


def shape_band(o: world.Obj):
    """|own coverage - mean coverage of every shape at o's place, size and rotation| (64 x 64 float32)."""
    import numpy as np

    own = world.object_coverage(o)
    others = [own if s == o.shape else world.object_coverage(dataclasses.replace(o, shape=s)) for s in world.SHAPES]
    return np.abs(own - np.mean(others, axis=0))


def edge_band(coverage):
    """The pixels within EDGE_PX of the outline of coverage > 0.5 (64 x 64 bool): dilated XOR eroded."""
    import numpy as np
    from PIL import Image, ImageFilter

    mask = Image.fromarray(((coverage > 0.5) * 255).astype(np.uint8))
    size = 2 * EDGE_PX + 1
    return np.asarray(mask.filter(ImageFilter.MaxFilter(size))) > np.asarray(mask.filter(ImageFilter.MinFilter(size)))


def scene_band(scene: world.Scene):
    """The scene's outline band in [0, 1] (64 x 64 float32): per object the larger of its shape band
    and its edge band, the objects' maximum."""
    import numpy as np

    band = np.zeros((world.SIZE, world.SIZE), np.float32)
    for o in scene.objects:
        band = np.maximum(band, np.maximum(shape_band(o), edge_band(world.object_coverage(o))))
    return band


def _band_chunk(args):
    import numpy as np

    start, stop, scenes = args
    return np.stack([(scene_band(world.random_scene(seed, **scenes)) * 255).round().astype(np.uint8) for seed in range(start, stop)])


def make_bands(start: int, count: int, workers: int = 1, scenes: dict | None = None):
    """The outline bands (N x 64 x 64 uint8) of the scenes make_base_dataset(start, count) draws."""
    import numpy as np

    from .train_base import BASE_SCENES

    ranges = [(s, min(s + CHUNK, start + count), scenes or BASE_SCENES) for s in range(start, start + count, CHUNK)]
    if workers > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            return np.concatenate(pool.map(_band_chunk, ranges))
    return np.concatenate([_band_chunk(r) for r in ranges])


def render_bands(count: int, workers: int, report: dict, log):
    """The base world's training images' outline bands (torch uint8, N x 64 x 64); the time to report."""
    import torch

    t = time.time()
    bands = torch.from_numpy(make_bands(0, count, workers))
    report.setdefault("dataset", {})["outline_seconds"] = time.time() - t
    log(f"drew {count} outline bands in {time.time() - t:.0f}s")
    return bands


def outline_weights(bands, factor: int, outline_weight: float, chunk: int = 8192):
    """The outline's additive loss weight per latent pixel of a /factor VAE (N x 1 x 64/factor x
    64/factor): outline_weight x the mean band under it (0 off the band)."""
    import torch
    import torch.nn.functional as F

    return torch.cat([outline_weight * F.avg_pool2d(bands[i : i + chunk, None].float() / 255, factor)
                      for i in range(0, bands.shape[0], chunk)])
