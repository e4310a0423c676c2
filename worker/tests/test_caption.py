"""caption: wiring, batching and error paths on a tiny random Florence-2 (quality is not testable here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from loraspec_worker import caption
from loraspec_worker.protocol import WorkerError

sys.path.insert(0, os.path.dirname(__file__))
from tiny_vlm import build_tiny_florence2  # noqa: E402

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_florence2(str(tmp_path_factory.mktemp("tiny-florence2")))


@pytest.fixture()
def images(tmp_path):
    paths = []
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.jpg")
    Image.new("RGBA", (30, 30), (0, 0, 255, 0)).save(tmp_path / "clear.png")
    rotated = Image.new("RGB", (50, 20), (10, 200, 10))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    Image.new("L", (20, 20), 128).save(tmp_path / "grey.png")
    (tmp_path / "broken.jpg").write_text("not an image")
    for name in ["red.jpg", "clear.png", "rotated.jpg", "grey.png", "broken.jpg"]:
        paths.append(str(tmp_path / name))
    return paths


def _events(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_captions_every_readable_image_in_batches(tiny_model, images, capsys):
    result = caption.run({"images": images, "model": tiny_model, "batch_size": 2, "min_new_tokens": 3, "max_new_tokens": 6, "num_beams": 1})
    assert sorted(result["captions"]) == sorted(images[:4])
    assert all(isinstance(t, str) and t for t in result["captions"].values())
    assert list(result["errors"]) == [images[4]]
    assert "unreadable" in result["errors"][images[4]]
    progress = [e for e in _events(capsys) if e["type"] == "progress"]
    # 1 unreadable counted first, then batches of 2, 2.
    assert [(e["current"], e["total"]) for e in progress] == [(1, 5), (3, 5), (5, 5)]


def test_same_captions_batched_or_one_by_one(tiny_model, images):
    one = caption.run({"images": images[:4], "model": tiny_model, "batch_size": 1, "min_new_tokens": 3, "max_new_tokens": 6, "num_beams": 1})
    four = caption.run({"images": images[:4], "model": tiny_model, "batch_size": 4, "min_new_tokens": 3, "max_new_tokens": 6, "num_beams": 1})
    assert one["captions"] == four["captions"]


def test_empty_model_output_is_an_error_per_image(tiny_model, images):
    # A random model says EOS at once: each image gets an error instead of an empty caption file.
    result = caption.run({"images": images[:2], "model": tiny_model, "max_new_tokens": 4, "num_beams": 1})
    assert result["captions"] == {}
    assert set(result["errors"]) == set(images[:2])


def test_a_failing_batch_is_retried_one_image_at_a_time(tiny_model, images, monkeypatch):
    real = caption._generate

    def flaky(kind, processor, model, imgs, request, device, dtype):
        if len(imgs) > 1:
            raise RuntimeError("shape mismatch in batch")
        return real(kind, processor, model, imgs, request, device, dtype)

    monkeypatch.setattr(caption, "_generate", flaky)
    result = caption.run({"images": images[:3], "model": tiny_model, "batch_size": 3, "min_new_tokens": 2, "max_new_tokens": 4, "num_beams": 1})
    assert sorted(result["captions"]) == sorted(images[:3])


@pytest.mark.parametrize(
    "request_, code",
    [
        ({}, "E_USAGE"),
        ({"images": "a.png"}, "E_USAGE"),
        ({"images": ["x"], "batch_size": 0}, "E_USAGE"),
        ({"images": ["x"], "precision": "int3"}, "E_USAGE"),
    ],
)
def test_bad_requests(request_, code):
    with pytest.raises(WorkerError) as info:
        caption.run(request_)
    assert info.value.code == code


def test_a_model_that_is_not_there(images, tmp_path):
    with pytest.raises(WorkerError) as info:
        caption.run({"images": images[:1], "model": str(tmp_path / "no-such-model")})
    assert info.value.code == "E_FILE_NOT_FOUND"


def test_command_line_json_lines(tiny_model, images):
    request = {"images": images[:2], "model": tiny_model, "min_new_tokens": 2, "max_new_tokens": 4, "num_beams": 1}
    proc = subprocess.run(
        [sys.executable, "-m", "loraspec_worker", "caption", "-"],
        input=json.dumps(request), capture_output=True, text=True, cwd=WORKER_DIR, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["type"] == "done"
    assert sorted(events[-1]["result"]["captions"]) == sorted(images[:2])


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_captions_on_cuda_in_bf16(tiny_model, images):
    result = caption.run({"images": images[:4], "model": tiny_model, "device": "cuda", "precision": "bf16", "batch_size": 4, "min_new_tokens": 3, "max_new_tokens": 6, "num_beams": 1})
    assert sorted(result["captions"]) == sorted(images[:4])
