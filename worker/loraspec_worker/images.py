"""Opening a user's image file: the one place the worker calls Image.open (train, caption, score and
embed all come here), so every command applies the same decompression-bomb limit, and the one way an image
becomes pixels (open_rgb: upright, transparent pixels flattened onto core's colour, RGB), so the trainer, the
captioner and the embedder see the same picture prep writes.

The limit is core's (knowledge/image-formats.ts MAX_INPUT_PIXELS, the one check and prep apply, exported
in schema/builtin-trainer.json maxImagePixels), not Pillow's lower process default (an error above
178,956,970 px): an image check passes opens in every command; one over core's limit is refused by name.
"""

from __future__ import annotations

import threading
import warnings

from .schema_files import builtin_trainer

MAX_IMAGE_PIXELS = builtin_trainer()["maxImagePixels"]
# Core's colour for transparent pixels (knowledge/image-formats.ts FLATTEN_BACKGROUND), as prep flattens them.
FLATTEN_BACKGROUND = builtin_trainer()["flattenBackground"]
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


def has_transparency(image) -> bool:
    """An alpha channel, or a palette / grey / RGB image with a transparent colour (PNG tRNS)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def open_rgb(path: str):
    """The image as training pixels: opened under core's limit (open_bounded), upright (EXIF orientation applied, as
    core's check and prep see it), transparent pixels flattened onto core's background colour as prep flattens them
    (convert("RGB") alone keeps the colour a transparent pixel stores, often black), RGB. Raises what open_bounded and
    Pillow raise; each command says it in its own error."""
    from PIL import Image, ImageOps

    with open_bounded(path) as opened:
        opened.load()
        image = ImageOps.exif_transpose(opened)
        if has_transparency(image):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, FLATTEN_BACKGROUND), rgba)
        return image.convert("RGB")
