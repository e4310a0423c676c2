"""score.py on a tiny randomly initialised CLIP saved to a temp folder and loaded by path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from loraspec_worker import score
from loraspec_worker.protocol import WorkerError

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from loraspec_worker.tiny_base import clip_tokenizer

    tok = clip_tokenizer()
    vocab = len(tok)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            max_position_embeddings=77, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    out = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(out)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tok
    )
    processor.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Eight different 32x32 images: smooth colour fields with noise, distinct per seed."""
    from PIL import Image

    out = tmp_path_factory.mktemp("imgs")
    paths = []
    for i in range(8):
        rng = np.random.default_rng(i)
        base = rng.integers(0, 255, size=(1, 1, 3))
        arr = np.clip(base + rng.normal(0, 60, size=(32, 32, 3)), 0, 255).astype("uint8")
        p = out / f"img{i}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return paths


def run_score(clip_dir, **fields):
    request = {"model": clip_dir, "device": "cpu", "reference": [], "trigger": [], "sets": [], "stack": []}
    request.update(fields)
    return score.run(request)


def test_identical_pairs_have_no_trigger_effect(clip_dir, images):
    r = run_score(clip_dir, trigger=[{"id": "w1", "pairs": [[images[0], images[0]], [images[1], images[1]]], "base_pairs": [[images[2], images[3]]]}])
    t = r["trigger"]["w1"]
    assert t["distance"] == pytest.approx(0.0, abs=1e-6)
    assert t["base_distance"] > 0
    assert t["effect"] == pytest.approx(-t["base_distance"], abs=1e-6)  # distance is 0 only to fp32 rounding


def test_a_trigger_that_changes_images_has_positive_effect(clip_dir, images):
    r = run_score(clip_dir, trigger=[{"id": "w1", "pairs": [[images[0], images[5]], [images[1], images[6]]], "base_pairs": [[images[0], images[0]], [images[1], images[1]]]}])
    assert r["trigger"]["w1"]["effect"] > 0


def test_copies_of_one_training_image_are_collapse_and_near_duplicates(clip_dir, images):
    ref = images[:4]
    r = run_score(clip_dir, reference=ref, sets=[{"id": "copies", "images": [ref[0]] * 5}, {"id": "mixed", "images": ref}])
    copies, mixed = r["sets"]["copies"], r["sets"]["mixed"]
    assert r["reference"]["count"] == 4
    assert -1.0 <= r["reference"]["pairwise_clip"] <= 1.0
    assert copies["collapse_share"] == 1.0
    assert copies["near_duplicate_share"] == 1.0
    assert copies["diversity"] == pytest.approx(0.0, abs=1e-5)
    assert mixed["collapse_share"] == pytest.approx(0.25)
    assert mixed["diversity"] > 0


def test_paired_images_give_each_images_clip_t_against_its_pairs(clip_dir, images):
    texts = ["on the moon", "in a forest"]
    r = run_score(clip_dir, sets=[{"id": "s", "images": images[4:6], "texts": texts, "paired": [images[4], images[6]]},
                                  {"id": "p", "images": [images[6]], "texts": texts[1:]}, {"id": "i", "images": [images[5]], "texts": texts[1:]}])
    s = r["sets"]["s"]
    assert s["clip_t_delta"][0] == pytest.approx(0.0, abs=1e-5)  # an image paired with itself
    assert s["clip_t_delta"][1] == pytest.approx(r["sets"]["i"]["clip_t"] - r["sets"]["p"]["clip_t"], abs=1e-5)
    assert s["clip_t_delta"][1] != pytest.approx(0.0, abs=1e-4)
    with pytest.raises(WorkerError) as e:
        run_score(clip_dir, sets=[{"id": "s", "images": images[:2], "texts": texts, "paired": images[:1]}])
    assert e.value.code == "E_USAGE"


def test_clip_t_needs_one_text_per_image(clip_dir, images):
    r = run_score(clip_dir, sets=[{"id": "scenes", "images": images[:2], "texts": ["on the moon", "in a forest"]}])
    assert -1.0 <= r["sets"]["scenes"]["clip_t"] <= 1.0
    with pytest.raises(WorkerError) as e:
        run_score(clip_dir, sets=[{"id": "scenes", "images": images[:2], "texts": ["only one"]}])
    assert e.value.code == "E_USAGE"


def test_stack_retention_is_one_when_the_stack_equals_the_adapter_alone_and_zero_when_it_equals_the_base(clip_dir, images):
    items = [{"stack": images[1], "base": images[0], "alone": {"me": images[1], "style": images[2], "noop": images[0]}}]
    r = run_score(clip_dir, stack=[{"id": "stack", "items": items}])
    s = r["stack"]["stack"]
    assert s["retention"]["me"] == pytest.approx(1.0, abs=1e-5)
    assert s["retention"]["noop"] is None
    items = [{"stack": images[0], "base": images[0], "alone": {"me": images[1]}}]
    assert run_score(clip_dir, stack=[{"id": "stack", "items": items}])["stack"]["stack"]["retention"]["me"] == pytest.approx(0.0, abs=1e-6)


def test_missing_image_is_a_coded_error(clip_dir, tmp_path):
    with pytest.raises(WorkerError) as e:
        run_score(clip_dir, sets=[{"id": "x", "images": [str(tmp_path / "nope.png")]}])
    assert e.value.code == "E_FILE_NOT_FOUND"


def test_the_score_command_speaks_json_lines(clip_dir, images, tmp_path):
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"model": clip_dir, "device": "cpu", "reference": images[:3], "sets": [{"id": "v", "images": images[3:6]}]}))
    proc = subprocess.run([sys.executable, "-m", "loraspec_worker", "score", str(req)], cwd=WORKER_DIR, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["type"] == "done"
    assert events[-1]["result"]["sets"]["v"]["count"] == 3
    assert any(e["type"] == "progress" and e["task"] == "score" for e in events)


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory):
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-dino")
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32, patch_size=8)).save_pretrained(out)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True).save_pretrained(out)
    return str(out)


def test_dino_fidelity_when_a_dino_model_is_given(clip_dir, dino_dir, images):
    r = run_score(clip_dir, dino_model=dino_dir, reference=images[:3], sets=[{"id": "v", "images": [images[0], images[4]]}])
    assert r["embedder"]["dino"] == dino_dir
    assert -1.0 <= r["reference"]["pairwise_dino"] <= 1.0
    assert -1.0 <= r["sets"]["v"]["fidelity_dino"] <= 1.0
    # An image that is one of the references is closer to them than the set's mean.
    same = run_score(clip_dir, dino_model=dino_dir, reference=images[:3], sets=[{"id": "s", "images": [images[0]]}])["sets"]["s"]["fidelity_dino"]
    assert same > r["reference"]["pairwise_dino"] - 1e-6


def test_candidates_tell_whether_each_image_matches_its_own_text_best(tmp_path):
    """The scene-swap measure's input, with the toy judge as the embedder (it knows the world's
    backgrounds): a grass picture captioned "sky" matches the grass text better than its own."""
    from toyworld import world

    judge = os.path.join(os.path.dirname(__file__), "..", "..", "models", "toy-judge")
    paths = []
    for bg in ("sky", "grass", "night"):
        scene = world.Scene(background=bg, tint=0, seed=3)
        scene.objects.append(world.Obj(shape="circle", colour="red", position=4, size="large"))
        paths.append(str(tmp_path / f"{bg}.png"))
        world.render(scene).save(paths[-1])
    texts = ["large, in the center on a sky background", "large, in the center on a sky background", "large, in the center on a night background"]
    candidates = ["large, in the center on a sky background", "large, in the center on a grass background", "large, in the center on a night background"]
    r = run_score(judge, sets=[{"id": "s", "images": paths, "texts": texts, "candidates": candidates, "paired": [paths[0], paths[0], paths[2]]}])
    assert r["sets"]["s"]["own_text_best"] == [True, False, True]
    assert r["sets"]["s"]["paired_own_text_best"] == [True, True, True]
    with pytest.raises(WorkerError) as e:
        run_score(judge, sets=[{"id": "s", "images": paths[:1], "texts": ["on the moon"], "candidates": candidates}])
    assert e.value.code == "E_USAGE" and "candidates" in e.value.message
