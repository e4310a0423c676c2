"""Opening a user's image file: the one place the worker calls Image.open (train, caption, score and
embed all come here), so every command applies the same decompression-bomb limit.

The limit is core's (knowledge/image-formats.ts MAX_INPUT_PIXELS, the one check and prep apply, exported
in schema/builtin-trainer.json maxImagePixels), not Pillow's lower process default (an error above
178,956,970 px): an image check passes opens in every command; one over core's limit is refused by name.
"""

from __future__ import annotations

import threading
import warnings

from .schema_files import builtin_trainer

MAX_IMAGE_PIXELS = builtin_trainer()["maxImagePixels"]
# Pillow's limit is a module global: it is swapped for one Image.open at a time.
_LIMIT_LOCK = threading.Lock()


def open_bounded(path: str):
    """Image.open (lazy: the header only) under core's pixel limit: Pillow's bomb check is moved to twice core's
    limit for this call only (it raises above 2x MAX_IMAGE_PIXELS) and core's own limit is checked on the size.
    Raises ValueError naming the limit for an image over it; the caller says it in its own error."""
    from PIL import Image

    limit = MAX_IMAGE_PIXELS
    with _LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    width, height = image.size
    if width * height > limit:
        image.close()
        raise ValueError(f"{width}x{height} = {width * height:,} px is over loraspec's {limit:,} px limit (decompression-bomb guard)")
    return image
