"""The built-in trainer opens images under core's pixel limit (knowledge/image-formats.ts MAX_INPUT_PIXELS, passed in
schema/builtin-trainer.json maxImagePixels), the one check and prep apply, not Pillow's lower default (an error above
178,956,970 px): an image check passes opens here; one over core's limit is E_IMAGE_UNREADABLE naming the limit."""

from __future__ import annotations

import struct
import zlib

import pytest

from loraspec_worker.protocol import WorkerError
from loraspec_worker.schema_files import builtin_trainer
from loraspec_worker.train import buckets as B


def header_only_png(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height with no pixel data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def header_only_jpeg(path, width: int, height: int) -> None:
    """A baseline JPEG header (SOF0 with width x height, SOS) and no scan data: Pillow reads its size without decoding."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(struct.pack(">BBB", i, 0x11, 0) for i in (1, 2, 3))
    sos = struct.pack(">B", 3) + b"".join(struct.pack(">BB", i, 0) for i in (1, 2, 3)) + b"\x00\x3f\x00"
    seg = lambda marker, data: b"\xff" + marker + struct.pack(">H", len(data) + 2) + data  # noqa: E731
    path.write_bytes(b"\xff\xd8" + seg(b"\xc0", sof) + seg(b"\xda", sos) + b"\xff\xd9")


def test_the_limit_is_cores():
    assert B.MAX_IMAGE_PIXELS == builtin_trainer()["maxImagePixels"] == 0x3FFF * 0x3FFF


def test_an_image_over_pillows_default_but_under_cores_limit_opens(tmp_path):
    from PIL import Image

    path = tmp_path / "big.jpg"
    header_only_jpeg(path, 15000, 15000)  # 225 Mpx: Pillow's default raises DecompressionBombError
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert B.image_size(str(path)) == (15000, 15000)
    assert Image.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3), "Pillow's process-wide limit is left as it was"


@pytest.mark.parametrize("opener", [B.image_size, B._open])
def test_an_image_over_cores_limit_is_unreadable_naming_the_limit(tmp_path, opener):
    path = tmp_path / "bomb.png"
    header_only_png(path, 20000, 20000)  # 400 Mpx: over core's 268,402,689
    with pytest.raises(WorkerError) as error:
        opener(str(path))
    assert error.value.code == "E_IMAGE_UNREADABLE"
    assert "268,402,689 px limit" in str(error.value)


# Every worker command that opens a user's image, as it opens one (each may wrap the error its own way).
def _openers():
    from loraspec_worker import caption, score

    return {"train (bucket size)": B.image_size, "train (pixels)": B._open, "caption": caption._open_image, "score/embed": score._open}


@pytest.mark.parametrize("name", list(_openers()))
def test_every_opener_uses_cores_limit_not_pillows_default(tmp_path, monkeypatch, name):
    """Pillow's process default lowered below a small real image: each opener still opens it (core's limit
    applies, not Pillow's); core's limit lowered below it: each refuses it, naming core's limit."""
    from PIL import Image

    from loraspec_worker import images

    path = tmp_path / "a.png"
    Image.new("RGB", (100, 80), (10, 20, 30)).save(path)
    opener = _openers()[name]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # plain Image.open raises DecompressionBombError above 2000 px
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    opened = opener(str(path))
    assert (opened if isinstance(opened, tuple) else opened.size) == (100, 80)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 6000)  # 8,000 px: under twice it, so core's own check refuses it
    with pytest.raises(Exception) as error:
        opener(str(path))
    assert "6,000 px limit" in str(error.value)
    assert Image.MAX_IMAGE_PIXELS == 1000, "Pillow's process-wide limit is left as it was"


def test_images_are_opened_in_one_place():
    """A new Image.open in the shipped worker would open under Pillow's default: every opener goes through images.py."""
    import pathlib

    package = pathlib.Path(B.__file__).resolve().parents[1]
    found = [str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "images.py" and "Image.open(" in p.read_text()]
    assert found == [], f"use images.open_bounded instead of Image.open in {found}"
