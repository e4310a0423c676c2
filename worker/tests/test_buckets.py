"""Aspect-ratio buckets in the built-in trainer (train/buckets.py): the same assignment as core
(packages/core/test/plan/buckets.spec.ts holds the same table), resize-to-cover + center crop with
SDXL's micro-conditioning, batches from one bucket. The portrait + landscape run per arch on the tiny
bases is in test_train.py (it shares that module's tiny bases)."""

from __future__ import annotations

import pytest
import torch

from loraspec_worker.train import buckets as B
from loraspec_worker.train.arches.flow import pack_2x2, unpack_2x2
from loraspec_worker import protocol
from loraspec_worker.train.dev_request import dev_config


def kohya_buckets(resolution, min_side, max_side, step):
    """Oracle: sd-scripts' make_bucket_resolutions, as core's makeBuckets writes them into the request."""
    sizes = set()
    square = resolution // step * step
    if min_side <= square <= max_side:
        sizes.add((square, square))
    for width in range(min_side, max_side + 1, step):
        height = min(max_side, resolution * resolution // width // step * step)
        if height >= min_side:
            sizes |= {(width, height), (height, width)}
    return [{"resolution": resolution, "width": w, "height": h} for w, h in sorted(sizes)]


@pytest.mark.parametrize("w,h,bw,bh", [(600, 900, 384, 640), (900, 600, 640, 384), (1000, 1000, 512, 512), (300, 1200, 256, 1024), (2000, 1000, 704, 320)])
def test_assignment_matches_core(w, h, bw, bh):
    got = B.assign_bucket(w, h, kohya_buckets(512, 256, 1024, 64))
    assert (got["width"], got["height"]) == (bw, bh)


def test_crop_to_bucket_covers_then_center_crops_and_reports_the_real_original_size():
    from PIL import Image

    pixels, original, crop = B.crop_to_bucket(Image.new("RGB", (40, 100)), 32, 48)
    assert tuple(pixels.shape) == (3, 48, 32)
    assert original == (100, 40)  # (height, width) before the resize
    assert crop == ((80 - 48) // 2, 0)  # resized to 32x80, cropped 16 px off the top


def test_one_bucket_draws_as_the_single_crop_trainer_did_and_several_never_mix():
    one = B.BucketSampler([(32, 32)] * 5)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert one.draw(4, g1) == torch.randint(0, 5, (4,), generator=g2).tolist()
    shapes = [(32, 48), (48, 32), (32, 48), (48, 32), (48, 32)]
    many = B.BucketSampler(shapes)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        batch = many.draw(3, g)
        assert len({shapes[i] for i in batch}) == 1
        seen.add(shapes[batch[0]])
    assert seen == {(32, 48), (48, 32)}
    a = [B.BucketSampler(shapes).draw(2, torch.Generator().manual_seed(9)) for _ in range(2)]
    assert a[0] == a[1]


def test_pack_2x2_round_trips_a_non_square_grid():
    x = torch.randn(2, 4, 6, 10)
    tokens = pack_2x2(x)
    assert tuple(tokens.shape) == (2, 15, 16)
    assert torch.equal(unpack_2x2(tokens, 6, 10), x)


def test_several_bucket_shapes_cannot_take_the_cuda_graph():
    two = [{"resolution": 48, "width": 32, "height": 48}, {"resolution": 48, "width": 48, "height": 32}]
    with pytest.raises(protocol.WorkerError, match="several bucket shapes"):
        dev_config(arch="sdxl", resolution=48, buckets=two, cuda_graphs=True)


def test_a_zimage_bucket_beyond_the_rotary_table_is_refused_with_a_code_not_a_device_assert():
    """Z-Image's rope table has axes_lens positions per axis: indexing past it is a CUDA device-side
    assert that poisons the process (seen on an H200 with a tiny base), so caching refuses it first."""
    from types import SimpleNamespace

    from loraspec_worker.protocol import WorkerError
    from loraspec_worker.train.arches.flow import ZImage

    arch = ZImage.__new__(ZImage)
    arch.pipe = SimpleNamespace(**{ZImage.denoiser_attr: SimpleNamespace(config=SimpleNamespace(all_patch_size=[2], axes_lens=[256, 32, 32]))})
    arch.check_rope_range((64, 64), (512, 512))  # 32 x 32 patches: the last position fits
    with pytest.raises(WorkerError) as e:
        arch.check_rope_range((152, 104), (1216, 832))
    assert e.value.code == "E_NOT_SUPPORTED" and "32x32" in e.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_portrait_stored_sideways_with_exif_orientation_buckets_and_trains_upright(tmp_path, fmt):
    """Phones store a portrait as landscape pixels plus EXIF orientation 6 (rotate 90 clockwise to
    view); core's check and prep see it upright (engine probe-image.ts). The trainer must too: the
    portrait bucket, and the pixels upright (before, it trained the stored landscape, sideways)."""
    import numpy as np
    from PIL import Image

    upright = Image.new("RGB", (40, 80), (20, 40, 200))
    upright.paste((230, 30, 30), (0, 0, 40, 20))  # a red band at the top
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 80x40; orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / f"phone.{fmt.lower()}")
    stored.save(path, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))

    assert B.image_size(path) == (40, 80)
    portrait, landscape = {"resolution": 48, "width": 32, "height": 64}, {"resolution": 48, "width": 64, "height": 32}
    (_, bucket), = B.plan_entries([(path, "")], [portrait, landscape])
    assert bucket == portrait
    pixels, original, crop = B.load_to_bucket(path, bucket)
    assert original == (80, 40) and crop == (0, 0)
    rgb = (pixels.permute(1, 2, 0).numpy() + 1) * 127.5
    top, bottom = rgb[:12].reshape(-1, 3).mean(axis=0), rgb[-12:].reshape(-1, 3).mean(axis=0)
    assert top[0] > 180 and top[2] < 80, top  # red on top: upright
    assert bottom[2] > 160 and bottom[0] < 60, bottom
    assert np.isfinite(rgb).all()


@pytest.mark.parametrize("reader", ["_open", "image_size"])
@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n", b"not an image"])
def test_an_image_the_trainer_cannot_decode_says_what_to_do(tmp_path, reader, content):
    # The run stops at it: the error names the file and says how to go on (prep leaves such files out).
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(protocol.WorkerError) as err:
        getattr(B, reader)(str(path))
    assert err.value.code == "E_IMAGE_UNREADABLE"
    assert str(path) in str(err.value)
    assert "loraspec prep" in (err.value.hint or "")


def test_prefetched_keeps_the_order_bounds_what_waits_and_raises_at_the_failing_call():
    # cache_entries decodes the next images in threads while the device encodes this one (issue 22's
    # whole-run cache phase): the same results in the same order as a plain loop, never more than
    # `ahead` calls started and not yet taken, and a failing image's error raised at its own turn.
    import threading

    started, taken, most = [], [], [0]
    lock = threading.Lock()

    def work(n):
        with lock:
            started.append(n)
            most[0] = max(most[0], len(started) - len(taken))
        if n == 7:
            raise protocol.WorkerError("E_IMAGE_UNREADABLE", "image 7")
        return n * n

    out = []
    with pytest.raises(protocol.WorkerError, match="image 7"):
        for value in B.prefetched(work, [(n,) for n in range(12)], ahead=3):
            taken.append(value)
            out.append(value)
    assert out == [n * n for n in range(7)]
    assert most[0] <= 3 + 1  # the ones waiting plus the one just submitted on a take
    assert max(started) <= 7 + 3  # nothing far past the failure was started
    assert list(B.prefetched(lambda a, b: a + b, [(1, 2), (3, 4)], ahead=1)) == [3, 7]
    assert list(B.prefetched(work, [])) == []
