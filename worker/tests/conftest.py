"""Fixtures more than one test file uses."""

from __future__ import annotations

import io
import json
import os

import pytest

# Under pytest-xdist (scripts/test-all.mjs runs `-n 2`) each worker is its own torch process: with
# torch's default threads (one per core) two of them thrash a 2-core machine, so each runs on one
# thread, as its subprocesses do (OMP_NUM_THREADS). A test that sets its own count still does.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

# The files sharing a session fixture (good_txcl_lora) run on one xdist worker, so it is trained once.
SHARED_SESSION = {"test_toyworld_lora.py", "test_toyworld_rubric.py", "test_toyworld_strip.py"}
# The heaviest work units first, so the other worker works through the rest beside them (seconds on CI's
# 2-core machine, serial run of 2026-12-06): the shared group 547, toyworld_aspect 117, lora_compute 82,
# distributed 79, regional_compile 55, toyworld 49, train 48, toyworld_flux_speed 43, sample_merge_flux 38.
# Other files follow in collection order.
HEAVIEST_FIRST = ["shared-good-txcl", "test_toyworld_aspect.py", "test_lora_compute.py", "test_distributed.py",
                  "test_regional_compile.py", "test_toyworld.py", "test_train.py", "test_toyworld_flux_speed.py",
                  "test_sample_merge_flux.py", "test_toyworld_flux.py", "test_toyworld_lanes.py", "test_samples.py",
                  "test_regularize.py", "test_sample_merge.py"]


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its file, or the shared group for the files in SHARED_SESSION."""
    name = os.path.basename(nodeid.split("::", 1)[0])
    return "shared-good-txcl" if name in SHARED_SESSION else name


def pytest_collection_modifyitems(config, items):
    """Under xdist, the heaviest work units first (a stable sort: each file's own order kept)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {unit: i for i, unit in enumerate(HEAVIEST_FIRST)}
        items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))


_file_started = {"name": None}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """When a file's first test starts, the worker's event output (protocol._out) is the default again: a fixture
    that swaps it (to keep training events out of a test's output) restores it by the end of its own file. Under
    pytest-xdist any file may follow any other in a process, and a session-scoped swap in test_toyworld_rubric.py
    once sent test_caption.py's progress events into a StringIO; this names the cause instead."""
    name = item.nodeid.split("::", 1)[0]
    if name == _file_started["name"]:
        return
    _file_started["name"] = name
    from loraspec_worker import protocol

    if protocol._out is not None:
        pytest.fail(f"{name} starts with loraspec_worker.protocol._out still swapped ({type(protocol._out).__name__}) by an "
                    "earlier file's fixture: swap it in a module- or function-scoped fixture and restore it", pytrace=False)


def pytest_xdist_make_scheduler(config, log):
    """`-n N --dist loadfile`: one work unit per file (module fixtures built once, not once per worker),
    the SHARED_SESSION files as one, handed out in collection order (heaviest first, above)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the heaviest-first order, not most-tests-first
    return FileScheduling(config, log)


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
