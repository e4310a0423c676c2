"""Every worker command that turns a user's image into pixels turns it into the same pixels (images.open_rgb): the
trainer's loader (train/buckets.py), the captioner (caption.py) and the embedder behind prep's duplicate check and
validate's scores (score.py). Before, the captioner flattened transparency onto a hard-coded white and missed palette
and grey images with a transparent colour, and the embedder applied neither EXIF orientation nor the flatten, so a
cut-out subject was embedded on black (whatever its transparent pixels stored) while it trained on core's colour.
A table over the image kinds a dataset holds; each reader against the one expected picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from loraspec_worker import caption, score
from loraspec_worker.schema_files import builtin_trainer
from loraspec_worker.train import buckets


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _kinds(tmp_path):
    """(name, path, expected RGB array): transparent pixels store black; core's colour is what must come out."""
    bg = _hex(builtin_trainer()["flattenBackground"])  # core's colour (knowledge/image-formats.ts FLATTEN_BACKGROUND)
    out = []
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[:, :4] = (200, 40, 40, 255)  # left half opaque red, right half transparent black
    want = np.zeros((6, 8, 3), np.uint8)
    want[:, :4] = (200, 40, 40)
    want[:, 4:] = bg
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out.append(("RGBA", tmp_path / "rgba.png", want))
    Image.fromarray(rgba, "RGBA").convert("LA").save(tmp_path / "la.png")
    grey = int(round(0.299 * 200 + 0.587 * 40 + 0.114 * 40))
    want_la = np.zeros((6, 8, 3), np.uint8)
    want_la[:, :4] = grey
    want_la[:, 4:] = bg
    out.append(("LA", tmp_path / "la.png", want_la))
    pal = Image.fromarray(rgba[..., :3], "RGB").quantize(colors=2)
    black = [i for i, c in enumerate(np.array(pal.getpalette()[:6]).reshape(2, 3)) if tuple(c) == (0, 0, 0)][0]
    pal.save(tmp_path / "p.png", transparency=black)  # palette with a transparent index (tRNS)
    out.append(("P + tRNS", tmp_path / "p.png", want))
    Image.fromarray(rgba[..., :3], "RGB").save(tmp_path / "rgb-trns.png", transparency=(0, 0, 0))  # RGB with a transparent colour
    out.append(("RGB + tRNS", tmp_path / "rgb-trns.png", want))
    plain = rgba[..., :3].copy()
    Image.fromarray(plain, "RGB").save(tmp_path / "rgb.png")
    out.append(("RGB", tmp_path / "rgb.png", plain))
    # EXIF orientation 6 (rotate 90 clockwise to view): stored 8x6 sideways, seen as the 6x8 picture above
    stored = Image.fromarray(plain, "RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "exif.jpg", exif=exif, quality=100, subsampling=0)
    out.append(("JPEG, EXIF orientation 6", tmp_path / "exif.jpg", plain))
    return out


READERS = {
    "train (buckets._open)": buckets._open,
    "caption (caption._open_image)": caption._open_image,
    "embed / score (score._open)": lambda p: score._open(str(p)),
}


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
def test_every_reader_gives_the_picture_that_trains(tmp_path, reader):
    for name, path, want in _kinds(tmp_path):
        got = np.asarray(READERS[reader](str(path)).convert("RGB"))
        assert got.shape == want.shape, (reader, name, got.shape)
        tol = 8 if name.startswith("JPEG") else 0
        assert np.abs(got.astype(int) - want.astype(int)).max() <= tol, (reader, name, got[0], want[0])


def test_no_reader_opens_or_converts_a_users_image_on_its_own():
    """open_rgb is the one way: no worker command calls Image.open or convert("RGB") on a file itself."""
    import inspect

    for module in (caption, score, buckets):
        source = inspect.getsource(module)
        assert "Image.open(" not in source, module.__name__
        assert "alpha_composite" not in source and "paste(" not in source, module.__name__
