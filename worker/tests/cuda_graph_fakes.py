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


def step_losses(arch, cfg, latents, text, extra, steps: int, graphed: bool) -> list[float]:
    """The arch's denoiser with a LoRA (torch seed 0) trained `steps` AdamW steps on one batch, each step's noise drawn
    from a generator seeded with its index: through speed.GraphedStep (2 eager warm-up steps, then the graph or, with
    patch_cuda_graph_failing, its eager fall-back) when `graphed`, else the trainer's plain eager step. Returns the losses."""
    import torch

    from loraspec_worker import speed, train

    arch.denoiser.requires_grad_(False)
    torch.manual_seed(0)
    train.add_lora(arch.denoiser, cfg, train.TARGETS[cfg.arch])
    params = [p for p in arch.denoiser.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    stepper = speed.GraphedStep(arch, params, opt, warmup=2) if graphed else None
    out = []
    for step in range(steps):
        gen = torch.Generator().manual_seed(step)
        if stepper:
            loss = stepper.step(latents, text, extra, gen)
        else:
            opt.zero_grad(set_to_none=True)
            loss = arch.loss(latents, text, extra, gen)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        out.append(float(loss.item()))
    return out
