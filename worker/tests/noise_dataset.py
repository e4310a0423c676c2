"""A dataset folder of seeded noise images with caption sidecars, for trainer tests."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def write_noise_dataset(folder, count: int, size: tuple[int, int], caption: str = "a photo of txcl", name: str = "{i}") -> str:
    """`count` RGB noise images of `size` (height, width) from seed 0, named `name.format(i=i)`,
    each with a `.txt` caption `caption.format(i=i)`. Returns the folder as a string."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        stem = os.path.join(folder, name.format(i=i))
        Image.fromarray((rng.random((*size, 3)) * 255).astype("uint8")).save(stem + ".png")
        with open(stem + ".txt", "w") as f:
            f.write(caption.format(i=i))
    return str(folder)
