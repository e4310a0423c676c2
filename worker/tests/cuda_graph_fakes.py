"""torch.cuda stand-ins for the CPU: the CUDA-graph path's streams, syncs and capture, where the capture
raises like an uncapturable op, so the graph path runs its eager warm-up and its eager fall-back."""

from __future__ import annotations

import contextlib


class FakeStream:
    def wait_stream(self, other):
        pass


class FailingGraph:
    """Stands in for torch.cuda.graph(...) on the CPU: its capture raises like an uncapturable op."""

    def __enter__(self):
        raise RuntimeError("operation not permitted when stream is capturing")

    def __exit__(self, *exc):
        return False


def patch_cuda_graph_failing(monkeypatch, torch) -> None:
    """torch.cuda's stream / sync / graph API replaced for a CPU run whose graph capture fails. Build the
    tiny pipeline (and import diffusers.loaders.peft) first: diffusers' annotations read torch.cuda."""
    for name, value in (("Stream", lambda: FakeStream()), ("current_stream", lambda: FakeStream()),
                        ("stream", lambda s: contextlib.nullcontext()), ("synchronize", lambda: None),
                        ("empty_cache", lambda: None), ("CUDAGraph", lambda: object()), ("graph", lambda g: FailingGraph())):
        monkeypatch.setattr(torch.cuda, name, value)
