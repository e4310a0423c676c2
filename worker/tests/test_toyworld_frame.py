"""The frame style probe (toyworld/frame_probe.py; bench/RESULTS.md, "A frame style on the toy SDXL
base"): the edge styles, their pixel measure and dataset, and the toy VAE's behaviour on a frame."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

from toyworld import concepts, frame_probe, style_probe, world

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join(REPO, "models", "toy-sdxl")


def _day_scenes(count: int, start: int = 8_300_000):
    scenes = (world.random_scene(start + i, two_objects=0.2) for i in range(count * 3))
    return [s for s in scenes if s.background != "night"][:count]


def test_edge_distance_counts_whole_pixels_to_the_nearest_edge():
    d = style_probe.edge_distance()
    assert d.shape == (64, 64)
    assert d[0, 0] == d[0, 40] == d[63, 63] == d[40, 63] == 0
    assert d[3, 3] == d[3, 30] == d[60, 30] == 3
    assert d[31, 32] == d[32, 31] == 31


def test_frame_paints_the_band_and_leaves_the_scene_inside_it():
    scene = world.random_scene(8_300_000, two_objects=0.2)
    plain = np.asarray(world.render(scene), np.float32)
    framed = style_probe.frame(copy.deepcopy(scene), 4)
    band = style_probe.edge_distance() < 4
    assert (framed[band] == np.array((15, 15, 20), np.float32)).all()
    assert np.array_equal(framed[~band], plain[~band])


def test_darkness_separates_a_drawn_frame_from_the_worlds_own_edges():
    for scene in _day_scenes(24):
        assert frame_probe.darkness(world.render(scene)) < 200
        assert frame_probe.darkness(frame_probe.STYLES["frame"](copy.deepcopy(scene))) > 230


def test_frame_dataset_keeps_the_style_concepts_scenes_and_captions(tmp_path):
    frame_probe.write_dataset(str(tmp_path), "frame", 3)
    for i in range(3):
        scene = concepts.concept_scene("style", i)
        assert (tmp_path / f"{i:03d}.txt").read_text().strip() == concepts.concept_caption("style", scene)
        assert (tmp_path / f"{i:03d}.txt").read_text().startswith(world.STYLE["trigger"] + ", ")
        for o in scene.objects:  # the frame is the style: the objects stay solid
            o.fill = "solid"
        expected = style_probe.frame(scene, 4).round().astype(np.uint8)
        from PIL import Image

        assert np.array_equal(np.asarray(Image.open(tmp_path / f"{i:03d}.png")), expected)


def test_scaled_multiplies_lora_b_only(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    path = str(tmp_path / "txst.safetensors")
    a, b = torch.ones(2, 3), torch.full((3, 2), 2.0)
    save_file({"unet.x.lora_A.weight": a, "unet.x.lora_B.weight": b}, path, metadata={"ss_network_dim": "2"})
    out = load_file(frame_probe.scaled(path, 1.5))
    assert torch.equal(out["unet.x.lora_A.weight"], a)
    assert torch.equal(out["unet.x.lora_B.weight"], b * 1.5)


@pytest.mark.skipif(not os.path.exists(os.path.join(BASE, "vae")), reason="models/toy-sdxl not present")
def test_toy_vae_redraws_the_scene_inside_a_frame(one_thread):
    """The toy VAE (trained on the world's scenes only) cannot draw a frame locally: a 4 px black
    band changes the round trip 8 px and more inside the edge about 6x as much as the plain scene's
    own error (26.9 against 4.5 /255 on the probe's 48 scenes). Why an edge style does not live
    where the character is not on this base; a VAE trained with framed scenes would fail this."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(BASE, subfolder="vae", torch_dtype=torch.float32).eval()
    report = frame_probe.interior(vae, "frame", count=16)
    assert report["plain"] < 7
    assert report["styled"] > 3 * report["plain"]
    assert report["styled ring only"] > 2.5 * report["plain"]  # the decoder alone spreads it too


def test_toy_request_trains_on_another_base_only_when_asked():
    from toyworld import rubric

    assert rubric.toy_request("d", "o", "txst", 10, 1)["base"] == rubric.BASE
    assert rubric.toy_request("d", "o", "txst", 10, 1, base="/tmp/framed-base")["base"] == "/tmp/framed-base"
    assert rubric.toy_request("d", "o", "txst", 10, 1, base=None)["base"] == rubric.BASE
