"""shape_probe.py's measures can tell yes from no: the linear probe reads a label that is in the
features and not one that is not; the loss-gap swap changes exactly the asked word."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from toyworld import shape_probe, world  # noqa: E402


def test_linear_probe_reads_a_present_label_and_not_an_absent_one():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 6, (800,), generator=g)
    present = torch.nn.functional.one_hot(y, 6).float() + 0.15 * torch.randn(800, 6, generator=g)
    absent = torch.randn(800, 32, generator=g)
    assert shape_probe._probe_accuracy(present[:600], y[:600], present[600:], y[600:], 6, epochs=100) >= 0.95
    assert shape_probe._probe_accuracy(absent[:600], y[:600], absent[600:], y[600:], 6, epochs=100) <= 0.35


@pytest.mark.parametrize("field", ["shape", "colour"])
def test_swap_changes_only_the_word(field):
    scene = shape_probe._scenes(1)[0]
    swapped = shape_probe._swap(scene, field, random.Random(0))
    a, b = world.natural_caption(scene).split(), world.natural_caption(swapped).split()
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
    assert getattr(swapped.objects[0], field) != getattr(scene.objects[0], field)
    assert (swapped.background, swapped.seed, swapped.objects[0].position) == (scene.background, scene.seed, scene.objects[0].position)
