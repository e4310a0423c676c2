"""The built-in trainer's reading of a dataset folder it was pointed at as it is (no prep): the same
pairing and caption reading as check and prep (engine caption-sidecar.ts), no dot-file junk, no symlinks."""

import json
import os

from PIL import Image

from loraspec_worker.train.data import read_dataset


def test_odd_files_read_as_check_and_prep_read_them(tmp_path, capsys):
    for name in ["a.jpg", "IMG_01.JPG", "bom.png", "latin.png"]:
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / name, format="PNG" if name.endswith("png") else "JPEG")
    (tmp_path / "a.txt").write_text("txcl, plain\n", encoding="utf-8")
    (tmp_path / "IMG_01.TXT").write_text("txcl, upper\n", encoding="utf-8")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbftxcl, bom\r\n")
    (tmp_path / "latin.txt").write_bytes("txcl, caf\u00e9".encode("latin-1"))
    # macOS junk: an AppleDouble twin with an image extension, and a hidden image.
    (tmp_path / "._a.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden.png")
    # Symlinks: one out of the folder, one to itself (a loop).
    Image.new("RGB", (8, 8)).save(tmp_path.parent / "outside.png")
    (tmp_path / "link.png").symlink_to(tmp_path.parent / "outside.png")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")

    items = {path.split("/")[-1]: caption for path, caption in read_dataset(str(tmp_path), "txcl")}

    assert items == {"IMG_01.JPG": "txcl, upper", "a.jpg": "txcl, plain", "bom.png": "txcl, bom", "latin.png": "txcl"}
    codes = [json.loads(line).get("code") for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert codes == ["W_CAPTION_NOT_UTF8"]


def test_caption_pairing_matches_the_engines_cases():
    """The worker's pairing (data._caption_files) against the cases the engine's pairSidecars is tested on
    (packages/engine/test/dataset/caption-pairing-cases.json): one rule, two readers, a test when they drift."""
    from pathlib import Path

    from loraspec_worker.train import data

    cases = json.loads((Path(__file__).resolve().parents[2] / "packages/engine/test/dataset/caption-pairing-cases.json").read_text())["cases"]
    for case in cases:
        found = data._caption_files(sorted(case["images"] + case["captions"]), case["ext"])
        pairs = {img: found[os.path.splitext(img)[0]] for img in case["images"] if os.path.splitext(img)[0] in found}
        assert pairs == case["pairs"], case
