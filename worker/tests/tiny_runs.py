"""A short training run on a tiny base with the trainer's events captured (the GPU tests' shared helper)."""

from __future__ import annotations

import io
import json
import os

from loraspec_worker import protocol, tiny_base, train
from loraspec_worker.train.dev_request import dev_request
from noise_dataset import write_noise_dataset


def tiny_run(arch, tmp_path, name, monkeypatch, **over):
    """8 steps at 64 px, rank 4, bf16 on `arch`'s tiny base (built once per tmp_path) and a 2-image noise
    dataset; `over` replaces request fields. Returns (result, losses, events)."""
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    base = str(tmp_path / f"base-{arch}")
    if not os.path.exists(base):
        tiny_base.make_tiny_base(arch, base)
    data = tmp_path / "data"
    if not data.exists():
        write_noise_dataset(data, 2, (64, 64))
    request = dev_request(**{"arch": arch, "base": base, "dataset": str(data), "output_dir": str(tmp_path / name), "resolution": 64,
                             "steps": 8, "rank": 4, "alpha": 4, "precision": "bf16", "max_sequence_length": 32, "learning_rate": 1e-3, **over})
    result = train.run(request)
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    return result, [e["loss"] for e in events if e["type"] == "loss"], events
