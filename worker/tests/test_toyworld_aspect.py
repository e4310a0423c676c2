"""Issue 21's bucket proof in the toy world, the half that needs no training: what the built-in
trainer is fed from the portrait-and-landscape txcl set (toyworld/aspect.py: the cyan cross in the
band a square centre crop cuts away), read by the judge through its 64x64 windows.

The trainer's own path (loop.load_and_cache: the dataset, core's bucket set, the crop, the VAE,
the latent cache), once with core's set for `aspect: buckets` and once for `aspect: square`: the
pixels it hands the VAE and the latents it caches (decoded by the toy VAE) keep the cross whole
in both orientations with buckets; the square crop has no cross in any of them. The trained half
(LoRAs sampled at 64x128 and 128x64) is `python -m toyworld aspect`, figures in bench/RESULTS.md.
"""

from __future__ import annotations

import io
import os

import pytest

from toyworld import aspect
from toyworld.judge import Judge

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join(REPO, "models", "toy-sdxl")
JUDGE = os.path.join(REPO, "models", "toy-judge")
COUNT = 20


@pytest.mark.parametrize("concept", ["character", "style", "product", "character-collapse"])
def test_render_at_any_size_still_draws_the_committed_64px_sets_exactly(concept):
    """world.render grew a canvas size for this set: at 64x64 every committed image is unchanged."""
    import json

    import numpy as np
    from PIL import Image

    from toyworld import world

    folder = os.path.join(REPO, "examples", "toyworld", concept)
    with open(os.path.join(folder, "labels.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for row in rows:
        committed = np.asarray(Image.open(os.path.join(folder, row["image"])).convert("RGB"))
        assert np.array_equal(np.asarray(world.render(world.Scene.from_dict(row["scene"]))), committed), row["image"]


def test_a_portrait_spreads_the_grid_and_keeps_the_object_size():
    """The grid's rows sit 16 px from the top and bottom of a 64x128 canvas: the top row's object
    is where it is at 64x64, the bottom row's 64 px lower, the same size."""
    import numpy as np

    from toyworld import world

    def cyan_rows(scene, size):
        a = np.asarray(world.render(scene, *size)).astype(int)
        mask = (abs(a - np.array(world.COLOURS["cyan"])).sum(axis=2) < 60)
        ys = np.nonzero(mask.any(axis=1))[0]
        return ys.min(), ys.max()

    scene = world.random_scene(5, two_objects=0.0, rotation=0.0, fixed={"shape": "square", "colour": "cyan", "size": "medium", "position": 1})
    scene.objects[0].dx = scene.objects[0].dy = 0.0
    top64, top128 = cyan_rows(scene, (64, 64)), cyan_rows(scene, (64, 128))
    assert top64 == top128
    scene.objects[0].position = 7  # at the bottom
    bottom64, bottom128 = cyan_rows(scene, (64, 64)), cyan_rows(scene, (64, 128))
    assert (bottom128[0] - bottom64[0], bottom128[1] - bottom64[1]) == (64, 64)


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """{variant: {"shapes", "time_ids", "pixels" (PIL, what the VAE encodes), "decoded" (PIL, the
    cached latents through the toy VAE)}} for the set, as train.run would cache it."""
    import torch
    from diffusers import AutoencoderKL

    from loraspec_worker import protocol
    from loraspec_worker.train.buckets import load_to_bucket, plan_entries
    from loraspec_worker.train.dev_request import dev_config
    from loraspec_worker.train.loop import load_and_cache

    data = str(tmp_path_factory.mktemp("aspect") / "character-aspect")
    aspect.write_aspect(data, COUNT)
    sets = {"bucketed": (aspect.BUCKETED["resolution"], aspect.core_buckets(aspect.BUCKETED["resolution"], aspect.BUCKETED["buckets"])),
            "square": (aspect.SQUARE["resolution"], aspect.core_buckets(aspect.SQUARE["resolution"]))}
    vae = AutoencoderKL.from_pretrained(os.path.join(BASE, "vae"), torch_dtype=torch.float32)
    before, protocol._out = protocol._out, io.StringIO()  # the trainer's phase events are not a test's output
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for variant, (resolution, buckets) in sets.items():
            cfg = dev_config(arch="sdxl", base=BASE, dataset=data, output_dir=str(tmp_path_factory.mktemp(variant)),
                             resolution=resolution, buckets=buckets, precision="fp32", device="cpu", trigger_word="txcl")
            _, _, items, cache = load_and_cache(cfg, torch.device("cpu"), torch.float32)
            entries = plan_entries(items, cfg.buckets)
            out[variant] = {
                "shapes": [c["shape"] for c in cache],
                "time_ids": [c["extra"]["time_ids"][0] for c in cache],
                "pixels": [aspect.pixels_to_image(load_to_bucket(items[i][0], b)[0]) for i, b in entries],
                "decoded": [aspect.decode_latents(vae, c["latents"])[0] for c in cache],
            }
    finally:
        torch.set_num_threads(threads)
        protocol._out = before
    return out


@pytest.fixture(scope="module")
def judge():
    return Judge(JUDGE)


def test_buckets_train_each_orientation_at_its_own_size(fed):
    portrait, landscape = aspect.PORTRAIT, aspect.LANDSCAPE
    assert fed["bucketed"]["shapes"] == [portrait if i % 2 == 0 else landscape for i in range(COUNT)]
    # SDXL micro-conditioning: the original size (h, w), no crop, the bucket (h, w)
    assert fed["bucketed"]["time_ids"][:2] == [[128, 64, 0, 0, 128, 64], [64, 128, 0, 0, 64, 128]]
    assert fed["square"]["shapes"] == [(64, 64)] * COUNT
    # the square crop keeps the middle: 32 px cut off the top of a portrait, the left of a landscape
    assert fed["square"]["time_ids"][:2] == [[128, 64, 32, 0, 64, 64], [64, 128, 0, 32, 64, 64]]


def counts(judge, images) -> dict:
    """Per orientation: images with the whole cross (cyan + cross in one window), with cyan at all."""
    reads = aspect.read_tiles(judge, images)
    out = {}
    for o, parity in (("portrait", 0), ("landscape", 1)):
        mine = [r for i, r in enumerate(reads) if i % 2 == parity]
        out[o] = {"whole": sum(map(aspect.shows_whole, mine)), "cyan": sum(map(aspect.shows_character, mine))}
    return out


def test_the_pixels_fed_to_the_vae_keep_the_cross_whole_with_buckets_and_lose_it_in_the_square_crop(fed, judge):
    got = {v: counts(judge, fed[v]["pixels"]) for v in fed}
    print(f"pixels before the VAE: {got} of {COUNT // 2} per orientation")
    for o in ("portrait", "landscape"):
        assert got["bucketed"][o]["whole"] == COUNT // 2, got  # every cross whole, in both orientations
        assert got["square"][o]["cyan"] == 0, got  # the crop is the middle: not a trace of the character


def test_the_cached_latents_hold_the_whole_image_with_buckets_and_only_the_middle_with_the_square_crop(fed, judge, tmp_path):
    """The toy VAE softens a small cross into a blob (its round trip of the set's own 64x64 windows
    reads 7 crosses of 20, as does the whole image's: a limit of the toy VAE, not of the buckets),
    so the decoded latents are judged on the character's colour: in every bucketed image, in none of
    the square crops. The crosses read whole are printed."""
    got = {v: counts(judge, fed[v]["decoded"]) for v in fed}
    print(f"cached latents, decoded: {got} of {COUNT // 2} per orientation")
    for o in ("portrait", "landscape"):
        assert got["bucketed"][o]["cyan"] == COUNT // 2, got
        assert got["square"][o]["cyan"] == 0, got


@pytest.mark.slow
def test_a_bucketed_lora_draws_the_character_where_portraits_and_landscapes_put_it(tmp_path):
    """The trained half: txcl LoRAs on the toy SDXL base through train.run (300 steps, rank 8, lr
    1e-3, batch 4, fp32, one thread, training seed 1), one bucketed (64x128 and 128x64 trained at
    their own size), one on square centre crops of the same set; 8 prompts per orientation put the
    character in the band the crop cuts away, sampled at 64x128 and 128x64 (20 steps, CFG 5). The
    bucketed LoRA draws cyan at the prompted end of the image; the square one learnt the trigger
    from crops without the character and draws it almost nowhere. The cross itself is printed, not
    asserted: the toy base draws shapes as blobs (45%) and its VAE softens small crosses (above).
    Figures for three training seeds in bench/RESULTS.md."""
    from loraspec_worker import protocol
    from toyworld import aspect_run

    before, protocol._out = protocol._out, io.StringIO()  # the trainer's events are not a test's output
    try:
        rows = aspect_run.run(str(tmp_path), steps=300, seed=1, base_row=False)
    finally:
        protocol._out = before
    print(aspect_run.table(rows))
    for o in ("portrait", "landscape"):
        placed = {v: rows[v][o]["placed"] for v in aspect_run.VARIANTS}
        assert placed["bucketed"] >= 4, (o, placed)  # 5-8 of 8 over training seeds 1-3, 6 at seed 1
        assert placed["square"] <= 2, (o, placed)
