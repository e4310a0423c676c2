"""GPU-only: network.targets beyond attention with the speed levers issue 22 timed them with (tiny
bases, seconds): SDXL all-linear under the whole-step CUDA graph replays its eager loss curve, FLUX.1
all-linear with compile + fp8 GEMMs follows its bf16 twin. Run on the GPU machine:
`worker/.venv/bin/python -m pytest -q worker/tests/test_targets_gpu.py`."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import schema_files  # noqa: E402
from tiny_runs import tiny_run  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
PRESETS = schema_files.builtin_trainer()["targetPresets"]


def test_sdxl_all_linear_under_the_cuda_graph_replays_the_eager_loss_curve(tmp_path, monkeypatch):
    targets = PRESETS["sdxl"]["presets"]["all-linear"]
    _, g_losses, g_events = tiny_run("sdxl", tmp_path, "graph", monkeypatch, gradient_checkpointing=False, cuda_graphs=True, channels_last=True, targets=targets)
    _, e_losses, _ = tiny_run("sdxl", tmp_path, "eager", monkeypatch, gradient_checkpointing=False, cuda_graphs=False, targets=targets)
    assert any("CUDA graph captured" in e.get("message", "") for e in g_events if e["type"] == "log"), g_events
    assert len(g_losses) == len(e_losses) == 8
    np.testing.assert_allclose(g_losses, e_losses, rtol=2e-2)


def test_flux_all_linear_with_compile_and_fp8_gemms_follows_bf16(tmp_path, monkeypatch):
    targets = PRESETS["flux1"]["presets"]["all-linear"]
    _, f_losses, f_events = tiny_run("flux1", tmp_path, "fp8mm", monkeypatch, compile=True, fp8_matmul=True, targets=targets)
    _, b_losses, _ = tiny_run("flux1", tmp_path, "bf16", monkeypatch, compile=True, fp8_matmul=False, targets=targets)
    assert not any(e["type"] == "warning" for e in f_events), f_events
    assert len(f_losses) == 8 and all(math.isfinite(v) for v in f_losses)
    np.testing.assert_allclose(f_losses, b_losses, rtol=5e-2)
