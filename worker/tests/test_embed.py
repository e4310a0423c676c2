"""embed.py on the tiny randomly initialised CLIP that test_score builds (same loader as score)."""

from __future__ import annotations

import math

import pytest

from loraspec_worker import embed
from loraspec_worker.protocol import WorkerError
from test_score import clip_dir, images  # noqa: F401 - pytest fixtures


def test_embeddings_are_normalised_and_equal_for_the_same_image(clip_dir, images):  # noqa: F811
    r = embed.run({"model": clip_dir, "device": "cpu", "images": images[:3] + images[:1]})
    assert r["kind"] == "clip" and r["dim"] == 16
    e = r["embeddings"]
    assert set(e) == set(images[:3])
    for v in e.values():
        assert math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4)
    cos = sum(a * b for a, b in zip(e[images[0]], e[images[1]]))
    assert cos < 0.9999  # two different images


def test_bad_requests_are_coded(clip_dir, images, tmp_path):  # noqa: F811
    with pytest.raises(WorkerError) as err:
        embed.run({"model": clip_dir, "device": "cpu", "images": images[:1], "kind": "vit"})
    assert err.value.code == "E_USAGE"
    with pytest.raises(WorkerError) as err:
        embed.run({"model": clip_dir, "device": "cpu", "images": [str(tmp_path / "missing.png")]})
    assert err.value.code == "E_FILE_NOT_FOUND"
    with pytest.raises(WorkerError) as err:
        embed.run({"model": str(tmp_path / "no-model"), "device": "cpu", "images": images[:1]})
    assert err.value.code == "E_FILE_NOT_FOUND"
