"""--outline-weight (toyworld/outline.py, train_flux.loss_weights) on the CPU: the band is where the
prompted shape differs from the other shapes plus its outline, the weights are 1 off it and larger
exactly on it, two shapes at one place get different weights, and train-base records the weight."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from toyworld import outline, train_flux, world  # noqa: E402
from toyworld.train_base import BASE_SCENES, make_base_dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def one(shape: str, size: str = "large", position: int = 4, rotation: float = 7.0) -> world.Scene:
    return world.Scene("sky", 0, [world.Obj(shape, "red", position, size, rotation=rotation, dx=0.6, dy=-1.2)])


def band_tensor(*scenes):
    return torch.from_numpy(np.stack([(outline.scene_band(s) * 255).round().astype(np.uint8) for s in scenes]))


@pytest.mark.parametrize("factor", [2, 4])
def test_weights_are_one_off_the_band_and_larger_exactly_on_it(factor):
    bands = band_tensor(one("star"), one("circle", "small", 0))
    w = train_flux.loss_weights(None, bands, factor, outline_weight=8.0)
    assert w.shape == (2, 1, 64 // factor, 64 // factor)
    on = torch.nn.functional.max_pool2d((bands > 0)[:, None].float(), factor) > 0  # a band pixel under the latent pixel
    assert torch.all(w[~on] == 1) and torch.all(w[on] > 1)
    assert on.sum() < 0.3 * on.numel()  # a band, not the image
    assert float(w.max()) <= 9.0 and float(w.max()) > 5.0  # 1 + 8 x the band's mean; whole latent pixels on the outline
    assert train_flux.loss_weights(None, bands, factor) is None  # both weights 0: the plain loss


def test_the_outline_term_adds_to_the_object_term():
    scene = one("triangle")
    bands = band_tensor(scene)
    masks = torch.from_numpy(world.object_coverage(scene.objects[0]) > 0.5)[None]
    objw = train_flux.object_weights(masks, 2, 4.0)
    both = train_flux.loss_weights(masks, bands, 2, 4.0, 8.0)
    assert torch.allclose(both, objw + outline.outline_weights(bands, 2, 8.0))
    assert torch.equal(train_flux.loss_weights(masks, bands, 2, 4.0, 0.0), objw)
    on = outline.outline_weights(bands, 2, 1.0) > 0
    assert torch.equal(both[~on], objw[~on]) and torch.all(both[on] > objw[on])


def test_the_band_is_the_edge_and_where_the_shape_leaves_the_mean_shape():
    o = one("star").objects[0]
    own = world.object_coverage(o)
    band = outline.scene_band(one("star"))
    edge = outline.edge_band(own)
    assert np.all(band[edge] == 1)  # the outline, 1 px either side
    inside = torch.from_numpy(own > 0.5)[None, None].float()
    dilated, eroded = torch.nn.functional.max_pool2d(inside, 3, 1, 1), -torch.nn.functional.max_pool2d(-inside, 3, 1, 1)
    assert np.array_equal(edge, (dilated - eroded)[0, 0].bool().numpy())  # the mask XOR its erosion, and 1 px outside
    mean = np.mean([world.object_coverage(world.Obj(s, "red", 4, "large", rotation=7.0, dx=0.6, dy=-1.2)) for s in world.SHAPES], 0)
    assert np.allclose(band[~edge], np.abs(own - mean)[~edge], atol=1e-6)
    core = mean > 0.999  # every shape covers it: the blob's core is not on the band
    assert core.sum() > 20 and np.all(band[core & ~edge] < 1e-6)


def test_two_shapes_at_the_same_place_get_different_weights():
    bands = band_tensor(*(one(s) for s in world.SHAPES))
    w = train_flux.loss_weights(None, bands, 2, outline_weight=8.0)
    for i in range(len(world.SHAPES)):
        for j in range(i):
            assert (w[i] - w[j]).abs().max() > 1, (world.SHAPES[i], world.SHAPES[j])


def test_the_bands_are_the_training_scenes_outlines():
    """make_bands(0, n) follows the scenes make_base_dataset(0, n) draws: zero beyond every shape's
    reach around each object (the square's corners, 0.85 x sqrt 2 of the radius, reach furthest),
    on the object masks' boundary (the training images' objects)."""
    bands = outline.make_bands(0, 12)
    _, _, masks = make_base_dataset(0, 12, masks=True)
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    for seed in range(12):
        scene = world.random_scene(seed, **BASE_SCENES)
        assert np.array_equal(bands[seed], (outline.scene_band(scene) * 255).round().astype(np.uint8))
        near = np.zeros((64, 64), bool)
        for o in scene.objects:
            cx, cy = world.object_centre(o)
            near |= np.hypot(xx - cx, yy - cy) <= 1.21 * world.RADIUS[o.size] + outline.EDGE_PX + 1
        assert not (bands[seed] > 0)[~near].any(), seed
        m = torch.from_numpy(masks[seed])[None, None].float()
        boundary = (m - -torch.nn.functional.max_pool2d(-m, 3, 1, 1))[0, 0].bool().numpy()
        assert (bands[seed][boundary] > 0).mean() >= 0.95, seed


def test_train_base_with_an_outline_weight_records_it(tmp_path, monkeypatch):
    """A tiny train-base --arch flux1 run (a few steps, 8 images, no judge): the loss sees the added
    weights, and toyworld.json's transformer section records outline_weight beside object_weight."""
    import functools

    from toyworld import train_base
    from toyworld.__main__ import main

    monkeypatch.setattr(train_flux, "train_vae", functools.partial(train_base.train_vae, batch=4))  # one VAE step of 128 images takes a minute here
    seen = []
    real = train_flux.loss_weights
    monkeypatch.setattr(train_flux, "loss_weights", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    out = tmp_path / "base"
    main(["train-base", "--arch", "flux1", "--out", str(out), "--judge-out", str(tmp_path / "no-judge"), "--device", "cpu",
          "--images", "8", "--vae-codec-images", "0", "--vae-steps", "1", "--transformer-steps", "2", "--batch", "2", "--workers", "1",
          "--eval", "0", "--flux-heads", "2", "--flux-double", "1", "--flux-single", "1", "--vae-downscale", "2", "--t5-lengths", "32",
          "--object-weight", "4", "--outline-weight", "8"])
    report = json.loads((out / "toyworld.json").read_text())
    assert report["transformer"]["outline_weight"] == 8 and report["transformer"]["object_weight"] == 4
    assert report["transformer"]["steps"] == 2 and "outline_seconds" in report["dataset"]
    assert len(seen) == 1 and seen[0].shape == (8, 1, 32, 32)
    bands = outline.make_bands(0, 8)
    _, _, masks = make_base_dataset(0, 8, masks=True)
    assert torch.allclose(seen[0], real(torch.from_numpy(masks), torch.from_numpy(bands), 2, 4.0, 8.0))


def test_the_sweeps_outline_variant_is_t32_objw_with_the_outline_weight():
    import bench_script
    from pathlib import Path

    from toyworld.__main__ import build_parser

    sweep = bench_script.load("toy-flux-sweep.py")
    args = sweep.parse_args(["--out", "o", "--variants", "t32-outline", "--transformer-seconds", "1200", "--workers", "16", "--deadline", "1550"])
    cmd = sweep.command("t32-outline", Path("f"), args)
    parsed = build_parser().parse_args(cmd[cmd.index("train-base") :])
    assert (parsed.outline_weight, parsed.object_weight, parsed.t5_lengths, parsed.vae_downscale) == (8, 4, (32,), 2)  # --t5-lengths parsed by its type
    flags = lambda v: dict(zip(sweep.VARIANTS[v][::2], sweep.VARIANTS[v][1::2]))  # noqa: E731
    assert flags("t32-outline") == flags("t32-objw") | {"--outline-weight": "8"}  # t32-objw plus the outline weight only
