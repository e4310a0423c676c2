"""GPU-only: samples during training on CUDA (train/samples.py) with the speed levers on: the
whole-step CUDA graph (SDXL), an fp8 base with compiled blocks (FLUX.1). Tiny bases, seconds.
With samples.first: the step-0 render comes before the graph capture and the first compile.

On the GPU machine: worker/.venv/bin/python -m pytest -q -m gpu worker/tests/test_samples_gpu.py
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_runs import tiny_run  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SAMPLES = {"every": 4, "prompts": ["a photo of txcl", "txcl on the moon"], "seeds": [42, 7], "steps": 4, "guidance_scale": 3.0, "first": True, "width": 64, "height": 64}


def _run(arch, tmp_path, name, monkeypatch, samples=None, **over):
    return tiny_run(arch, tmp_path, name, monkeypatch, samples=samples, **over)


def _check_samples(events, out_dir):
    got = [e for e in events if e["type"] == "sample"]
    assert [e["step"] for e in got] == [0] * 4 + [4] * 4 + [8] * 4  # first: the base before step 1
    assert sorted(os.listdir(out_dir / "samples")) == sorted(os.path.basename(e["path"]) for e in got)


@pytest.mark.parametrize(("arch", "levers"), [
    ("sdxl", {"gradient_checkpointing": False, "cuda_graphs": True, "channels_last": True}),
    ("flux1", {"gradient_checkpointing": True, "quantize": "fp8", "compile": True}),
    ("flux1", {"compile": True, "fp8_matmul": True}),
])
def test_samples_with_the_speed_levers_keep_the_loss_curve(arch, levers, tmp_path, monkeypatch):
    _, on, events = _run(arch, tmp_path, "on", monkeypatch, SAMPLES, **levers)
    _, off, _ = _run(arch, tmp_path, "off", monkeypatch, None, **levers)
    assert not any(e["type"] == "warning" and "GRAPH_FALLBACK" in (e.get("code") or "") for e in events), events
    _check_samples(events, tmp_path / "on")
    assert len(on) == 8 and all(math.isfinite(v) for v in on)
    # Sampling between steps leaves the training untouched (same seed, same curve).
    # (a moved RNG draws other timesteps and noise: the curves would differ by far more than kernel noise)
    np.testing.assert_allclose(on, off, rtol=1e-3)


@pytest.mark.parametrize("arch", ["flux2-klein", "zimage", "qwen-image"])
def test_samples_in_bf16_on_cuda(arch, tmp_path, monkeypatch):
    _, losses, events = _run(arch, tmp_path, "on", monkeypatch, SAMPLES, gradient_checkpointing=True)
    _check_samples(events, tmp_path / "on")
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
