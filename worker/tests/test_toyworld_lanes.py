"""lanes.py: toy-world jobs side by side in processes give what they give in this process."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from toyworld import lanes, rubric


def _tensors_digest(path: str) -> str:
    """The tensors' names and bytes (the file's metadata holds its run's times and paths)."""
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(path).items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_lanes_default_to_the_cpus_capped_at_two_and_follow_the_environment(monkeypatch):
    monkeypatch.delenv("LORASPEC_TOY_LANES", raising=False)
    assert lanes.lanes() == max(1, min(2, os.cpu_count() or 1))
    monkeypatch.setenv("LORASPEC_TOY_LANES", "3")
    assert lanes.lanes() == 3
    monkeypatch.setenv("LORASPEC_TOY_LANES", "0")
    assert lanes.lanes() == 1


def test_a_lora_trained_in_a_lane_is_the_one_trained_here(tmp_path):
    """Two short trainings (the unbound and collapse variants, 3 steps) in two lanes, then the same in this
    process on one thread: the same tensors, so the rubric's figures hold whichever way the test trains them."""
    from loraspec_worker import protocol

    variants = [v for v in rubric.VARIANTS if v.name in ("unbound", "collapse")]
    jobs = lambda where: {v.name: (rubric.train_variant, (v, str(tmp_path / where / v.name)), {"seed": 1, "steps": 3}) for v in variants}  # noqa: E731
    side_by_side = lanes.in_processes(jobs("lanes"), workers=2)
    before, protocol._out = protocol._out, io.StringIO()
    try:
        here = lanes.in_processes(jobs("here"), workers=1)
    finally:
        protocol._out = before
    assert set(side_by_side) == set(here) == {"unbound", "collapse"}
    for name in here:
        assert side_by_side[name] != here[name]  # two files, one per place
        assert _tensors_digest(side_by_side[name]) == _tensors_digest(here[name]), name


def _boom(message: str) -> None:
    raise ValueError(message)


def test_a_failing_job_fails_the_call_with_its_error():
    with pytest.raises(ValueError, match="no good"):
        lanes.in_processes({"a": (_boom, ("no good",), {}), "b": (len, ("ab",), {})}, workers=2)
    assert lanes.in_threads({"a": (len, ("abc",), {}), "b": (len, ("ab",), {})}, workers=2) == {"a": 3, "b": 2}
