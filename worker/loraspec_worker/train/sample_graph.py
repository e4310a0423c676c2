"""SDXL's in-training samples with the UNet forward replayed from one CUDA graph (train/samples.py).

SDXL's eager UNet at the samples' batch 2 (CFG) is launch-bound: ~0.15 s per denoising step on an
H200, where one graph replay takes ~0.03-0.05 s. The graph is captured once per run, at the first
sample, and replayed for every denoising step of every later sample; the pipeline's own code is
untouched: only the UNet's forward is patched while samples render.

What a replay reads: the static input buffers (the latents, the timestep as a device tensor, the
prompt embeddings, added_cond_kwargs' text_embeds and time_ids), each call's values copied in, and
the denoiser's weights in place: the LoRA parameters the optimizer updates in place (loop.py makes
them fp32 with p.data at set-up, before any sample) and EMA's shadow copied into them
(regularize.Ema.applied). A train_text_encoder run's new prompt embeddings are new values of the same
static buffers. A call the graph does not fit (another input shape or dtype, an extra input such as
ControlNet residuals, timestep_cond, cross_attention_kwargs) runs eagerly; a capture that fails
falls back to eager for the rest of the run. Either warns once with the table's code
(core's BUILTIN_TRAINER.sampleGraph.warning).

The graph's memory: its private pool keeps the forward's intermediates reserved for the rest of the
run (core: knowledge/vram.ts SAMPLE_GRAPH_VRAM, an estimate).
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any, Callable, Optional

from ..protocol import emit, warning
from .config import TABLE

# Core decides which arches' samples replay a graph and the warning code of a fallback (BUILTIN_TRAINER.sampleGraph).
WARNING = TABLE["sampleGraph"]["warning"]
ARCHES = tuple(TABLE["sampleGraph"]["arches"])
# Eager forwards on a side stream before the capture (torch.cuda.graphs' recipe: cuBLAS/cuDNN handles, cuDNN's
# autotuning of the batch-2 shapes): one makes them exist, as one does for the training step's capture
# (speed.GRAPH_WARMUP_STEPS, measured on the H100 and H200); each more was an eager batch-2 forward (~0.15 s on
# an H200) of the first sample.
WARMUP = 1
# The keyword arguments a replay takes; any other given (not None) means: run eagerly.
_GRAPHED = ("encoder_hidden_states", "added_cond_kwargs")
_IGNORED_IF_EMPTY = ("timestep_cond", "cross_attention_kwargs", "class_labels", "attention_mask", "encoder_attention_mask",
                     "down_block_additional_residuals", "mid_block_additional_residual", "down_intrablock_additional_residuals")
_ADDED = ("text_embeds", "time_ids")


class CudaBackend:
    """torch.cuda's graph API: warm-up forwards on a side stream, then one capture into a private pool."""

    pool_gib = 0.0  # what the capture added to the reserved memory (the pool; logged)

    def capture(self, fn: Callable[[], Any]):
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        before = torch.cuda.memory_reserved()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # pool=None: the graph's own private memory pool
            out = fn()
        torch.cuda.synchronize()
        self.pool_gib = (torch.cuda.memory_reserved() - before) / 2**30
        return graph, out

    def reset(self) -> None:
        import torch

        torch.cuda.synchronize()
        gc.collect()
        torch.cuda.empty_cache()


class GraphedUnet:
    """The UNet's forward for samples: copies each call's inputs into the static buffers, replays the
    graph, returns a clone of the static output in the type the caller asked for."""

    def __init__(self, backend: Any = None):
        self.backend = backend if backend is not None else CudaBackend()
        self.graph = None
        self.static: Optional[dict] = None
        self.out = None
        self.key: Optional[tuple] = None
        self.failed = False
        self.warned = False
        self.replays = 0
        self.eager_calls = 0

    def captures_next(self) -> bool:
        """The next sample may capture (the caller lets no other thread touch the GPU meanwhile)."""
        return self.graph is None and not self.failed

    def __call__(self, original: Callable, *args, **kwargs):
        fit = _fit(args, kwargs)
        if fit is None or self.failed:
            return self._eager(original, args, kwargs, None if self.failed else "a call with inputs the graph does not take")
        sample, timestep, ehs, added, return_dict = fit
        key = _key(sample, timestep, ehs, added)
        if self.graph is None:
            try:
                self._capture(original, sample, timestep, ehs, added, key)
            except Exception as e:  # noqa: BLE001 - an op that cannot be captured, or no memory for the pool: sample eagerly
                self.failed, self.graph, self.static, self.out = True, None, None, None
                self._warn(f"CUDA graph capture of the sample UNet failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); "
                           "samples render eagerly")
                with contextlib.suppress(Exception):
                    self.backend.reset()
                return self._eager(original, args, kwargs, None)
        elif key != self.key:
            return self._eager(original, args, kwargs, f"a sample call of another shape or dtype ({_describe(key)}, the graph's {_describe(self.key)})")
        self._copy_in(sample, timestep, ehs, added)
        self.graph.replay()
        self.replays += 1
        out = self.out.clone()
        if not return_dict:
            return (out,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=out)

    def _capture(self, original, sample, timestep, ehs, added, key) -> None:
        self.backend.reset()  # the graph gets its own pool: eager blocks cached so far go back first
        self.static = {"sample": sample.clone(), "timestep": _static_timestep(timestep, sample.device), "ehs": ehs.clone(),
                       "added": {k: added[k].clone() for k in _ADDED}}
        s = self.static

        def forward():
            return original(s["sample"], s["timestep"], encoder_hidden_states=s["ehs"], added_cond_kwargs=s["added"], return_dict=False)[0]

        self.graph, self.out = self.backend.capture(forward)
        self.key = key
        pool = getattr(self.backend, "pool_gib", 0.0)
        emit({"type": "log", "level": "info", "message": f"sample graph captured ({_describe(key)}; pool {pool:.2f} GiB): the UNet forward is now one replay"})

    def _copy_in(self, sample, timestep, ehs, added) -> None:
        s = self.static
        s["sample"].copy_(sample)
        if hasattr(timestep, "shape"):
            s["timestep"].copy_(timestep.reshape(s["timestep"].shape))
        else:
            s["timestep"].fill_(timestep)
        s["ehs"].copy_(ehs)
        for k in _ADDED:
            s["added"][k].copy_(added[k])

    def _eager(self, original, args, kwargs, why: Optional[str]):
        if why:
            self._warn(f"{why}: this sample's UNet runs eagerly")
        self.eager_calls += 1
        return original(*args, **kwargs)

    def _warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            warning(message, code=WARNING)


def _fit(args: tuple, kwargs: dict):
    """(sample, timestep, encoder_hidden_states, added_cond_kwargs, return_dict) when the graph can
    take this call (UNet2DConditionModel.forward's arguments, as the SDXL pipeline passes them), else None."""
    names = ("sample", "timestep", "encoder_hidden_states")
    given = dict(zip(names, args))
    if len(args) > len(names) or set(given) & set(kwargs):
        return None
    given.update(kwargs)
    return_dict = bool(given.pop("return_dict", True))
    for k in _IGNORED_IF_EMPTY:
        v = given.pop(k, None)
        if v is not None and not (isinstance(v, dict) and not v):
            return None
    if set(given) != {"sample", "timestep", *_GRAPHED}:
        return None
    added = given["added_cond_kwargs"]
    if not isinstance(added, dict) or set(added) != set(_ADDED):
        return None
    tensors = [given["sample"], given["encoder_hidden_states"], *added.values()]
    if not all(hasattr(t, "copy_") for t in tensors) or len({t.device for t in tensors}) != 1:
        return None
    t = given["timestep"]
    if hasattr(t, "shape") and t.numel() != 1:
        return None
    return given["sample"], t, given["encoder_hidden_states"], added, return_dict


def _static_timestep(timestep, device):
    """The timestep as a device tensor the replay reads: a tensor keeps its dtype and shape; a number
    becomes what the UNet makes of it (float64 for a float, int64 for an int, shape [1])."""
    import torch

    if hasattr(timestep, "shape"):
        return timestep.detach().to(device).clone()
    return torch.tensor([timestep], dtype=torch.float64 if isinstance(timestep, float) else torch.int64, device=device)


def _key(sample, timestep, ehs, added) -> tuple:
    t = (str(timestep.dtype), tuple(timestep.shape)) if hasattr(timestep, "shape") else (type(timestep).__name__,)
    return ((tuple(sample.shape), str(sample.dtype), str(sample.device)), t, (tuple(ehs.shape), str(ehs.dtype)),
            tuple((k, tuple(added[k].shape), str(added[k].dtype)) for k in _ADDED))


def _describe(key: Optional[tuple]) -> str:
    return f"latents {list(key[0][0])} {key[0][1]}" if key else "none"


def make(arch: str, device) -> Optional[GraphedUnet]:
    """The run's sample graph: SDXL on a CUDA device, else None (samples render eagerly)."""
    if arch not in ARCHES or getattr(device, "type", str(device)) != "cuda":
        return None
    return GraphedUnet()


@contextlib.contextmanager
def patched(unet, graphed: Optional[GraphedUnet]):
    """The UNet's forward goes through the graph for the duration (a sample render); restored after."""
    if graphed is None:
        yield
        return
    had = "forward" in unet.__dict__
    previous = unet.__dict__.get("forward")
    original = unet.forward
    unet.forward = lambda *args, **kwargs: graphed(original, *args, **kwargs)
    try:
        yield
    finally:
        if had:
            unet.forward = previous
        else:
            del unet.forward
