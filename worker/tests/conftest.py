"""Fixtures more than one test file uses."""

from __future__ import annotations

import io
import json

import pytest


@pytest.fixture
def one_thread():
    """One torch thread for the test (several torch processes thrash on 2 cores), the process's count restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def events(monkeypatch):
    """The worker's events as a test reads them: protocol's output captured, parsed on each call."""
    from loraspec_worker import protocol

    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    return lambda: [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.fixture(scope="session")
def good_txcl_lora(tmp_path_factory) -> str:
    """The rubric's good txcl LoRA (toyworld/rubric.py, VARIANTS "good": the character dataset with
    the prior images as reg images, 300 steps, training seed 1), trained once per session: the
    rubric test validates it, test_toyworld_lora samples it (one training instead of two). It
    renders rubric.STRIP_SAMPLES while it trains (beside the LoRA in samples/, step 0 and 300):
    test_toyworld_strip judges them; sampling leaves the LoRA as it would be without."""
    import torch

    from loraspec_worker import protocol
    from toyworld import rubric

    good = next(v for v in rubric.VARIANTS if v.name == "good")
    before, protocol._out = protocol._out, io.StringIO()  # the trainer's events are not a test's output
    threads = torch.get_num_threads()
    torch.set_num_threads(rubric.THREADS)
    try:
        return rubric.train_variant(good, str(tmp_path_factory.mktemp("good-txcl")), seed=1, samples=rubric.STRIP_SAMPLES)
    finally:
        torch.set_num_threads(threads)
        protocol._out = before
