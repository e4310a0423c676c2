"""Speed and memory levers of the built-in trainer (issue #9), kept apart from the training loop.

- `quantize_fp8_`: the frozen base's block linears held in float8 (e4m3) with one bf16 scale per
  output row, dequantized per layer on the fly. Halves the weights (FLUX.1: 22 -> 11 GiB), which
  is what the 24 GB recipe needs; the LoRA parameters and the matmuls stay bf16/fp32.
  With `matmul` (the fp8_matmul lever) the forward and the input gradient run as fp8 GEMMs
  (torch._scaled_mm, activations quantized per token): FLUX.1 1.09x over compile alone on an H200.
- `compile_blocks`: regional torch.compile of the repeated blocks (one compiled graph reused by
  every block of a kind), so compile takes tens of seconds instead of minutes.
- `use_channels_last`: NHWC for the SDXL UNet's convolutions (cuDNN's fast path in bf16).

Each lever keeps the loss function the same: bench/gpu-speed.py checks that the loss curve of a
fast configuration matches the eager one over 50 steps.
"""

from __future__ import annotations

import functools
import gc
from typing import Any

from .protocol import emit, is_oom, warning
from .schema_files import builtin_trainer

# The repeated blocks per denoiser class. diffusers declares `_repeated_blocks` for its
# transformers; the UNet's list holds only its transformer blocks, and its resnets repeat too.
EXTRA_REPEATED = {"UNet2DConditionModel": ["ResnetBlock2D"]}
# Dynamo compiles one graph per distinct block shape and guard set (SDXL: ~10 resnet shapes,
# 2 transformer shapes); the default cache of 8 per code object would fall back to eager.
COMPILE_CACHE_LIMIT = 64


def repeated_block_names(model) -> list[str]:
    names = list(getattr(model, "_repeated_blocks", None) or [])
    return names + [n for n in EXTRA_REPEATED.get(type(model).__name__, []) if n not in names]


def compile_blocks(model, mode: str | None = None, backend: str = "inductor", names: list[str] | None = None) -> int:
    """Compiles each repeated block in place (module.compile). Returns how many were compiled.
    Dynamo compiles one graph per block kind and input variant, shared by every instance of the
    kind (tiny FLUX.1 on the CPU: 4 graphs for 4 or 9 blocks; train/compile_cache.py says why 4 and
    what a warm start still pays).
    `backend`: inductor (the trainer); tests trace with aot_eager (no kernel compiler).
    `names`: the block classes to compile instead of the model's repeated blocks (the toy world's text encoders)."""
    import torch

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, COMPILE_CACHE_LIMIT)
    if hasattr(torch._dynamo.config, "accumulated_cache_size_limit"):
        torch._dynamo.config.accumulated_cache_size_limit = max(torch._dynamo.config.accumulated_cache_size_limit, 4 * COMPILE_CACHE_LIMIT)
    names = set(names if names is not None else repeated_block_names(model))
    count = 0
    for module in model.modules():
        if type(module).__name__ in names:
            module.compile(backend=backend, **({"mode": mode} if mode else {}))
            count += 1
    return count


def use_channels_last(model) -> bool:
    """NHWC weights for a convolutional denoiser; returns False (and does nothing) for transformers."""
    import torch

    if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return False
    model.to(memory_format=torch.channels_last)
    return True


@functools.cache
def fp8_linear_class():
    """The Fp8Linear module class (defined on first use: torch is imported lazily)."""
    import torch
    import torch.nn.functional as F

    fmax = torch.finfo(torch.float8_e4m3fn).max

    def rowwise(t):
        """(t8, scale): t (M, K) as float8 e4m3 with one float32 scale per row (t ~ t8 * scale)."""
        scale = (t.abs().amax(dim=1, keepdim=True).float() / fmax).clamp(min=1e-12)
        return (t.float() / scale).clamp(-fmax, fmax).to(torch.float8_e4m3fn), scale

    def scaled_mm(a, b8t, b_scale, out_dtype):
        """a (M, K) @ b8t^T with b8t (N, K) e4m3 row-major and b_scale (1, N): fp8 tensor-core math,
        a quantized per row on the fly, the result in out_dtype."""
        a8, a_scale = rowwise(a)
        return torch._scaled_mm(a8, b8t.t(), scale_a=a_scale, scale_b=b_scale, out_dtype=out_dtype)

    class Fp8LinearFunction(torch.autograd.Function):
        """y = x @ (w8 * scale)^T + b, saving only the fp8 weight for the backward pass (the base is
        frozen: no weight gradient, so the input is not saved either). With `matmul`, the forward
        runs as an fp8 GEMM (x quantized per token); with a transposed copy `wt8` (per-column
        scales), the input gradient too. Otherwise the weight is dequantized to the compute dtype."""

        @staticmethod
        def forward(ctx, x, w8, scale, bias, matmul, wt8, wt_scale):
            ctx.save_for_backward(w8, scale, wt8, wt_scale)
            ctx.shape = x.shape
            if matmul:
                y = scaled_mm(x.reshape(-1, x.shape[-1]), w8, scale.float().t(), scale.dtype)
                y = y.reshape(*x.shape[:-1], w8.shape[0])
                return y + bias if bias is not None else y
            w = w8.to(scale.dtype) * scale
            return F.linear(x.to(w.dtype), w, bias)

        @staticmethod
        def backward(ctx, grad):
            w8, scale, wt8, wt_scale = ctx.saved_tensors
            if wt8 is not None:
                g = scaled_mm(grad.reshape(-1, grad.shape[-1]), wt8, wt_scale, scale.dtype)
                return g.reshape(ctx.shape), None, None, None, None, None, None
            w = w8.to(scale.dtype) * scale
            return grad.to(w.dtype) @ w, None, None, None, None, None, None

    class Fp8Linear(torch.nn.Module):
        """A frozen nn.Linear whose weight is held as float8_e4m3fn with a per-row scale.
        matmul=True: the forward is an fp8 GEMM (torch._scaled_mm, row-wise scales);
        transposed=True: a second fp8 copy with per-column scales makes the input gradient an fp8
        GEMM too (the weights then take as many bytes as in bf16). Needs both dims divisible by 16."""

        def __init__(self, linear: torch.nn.Linear, device, compute_dtype, matmul: bool = False, transposed: bool = False):
            super().__init__()
            self.in_features = linear.in_features
            self.out_features = linear.out_features
            w = linear.weight.detach().to(device=device, dtype=torch.float32)
            amax = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
            # The scale is rounded to the compute dtype first, so dequantizing with it is exact.
            scale = (amax / fmax).to(compute_dtype)
            self.register_buffer("weight_fp8", (w / scale.float()).clamp(-fmax, fmax).to(torch.float8_e4m3fn))
            self.register_buffer("weight_scale", scale)
            self.matmul = matmul and self.in_features % 16 == 0 and self.out_features % 16 == 0
            if self.matmul and transposed:
                wt8, wt_scale = rowwise(w.t().contiguous())
                self.register_buffer("weight_fp8_t", wt8)
                self.register_buffer("weight_scale_t", wt_scale.t().contiguous())
            else:
                self.weight_fp8_t = self.weight_scale_t = None
            if linear.bias is not None:
                self.register_buffer("bias", linear.bias.detach().to(device=device, dtype=compute_dtype))
            else:
                self.bias = None

        def forward(self, x):
            return Fp8LinearFunction.apply(x, self.weight_fp8, self.weight_scale, self.bias, self.matmul, self.weight_fp8_t, self.weight_scale_t)

        def dequantized(self):
            return self.weight_fp8.to(self.weight_scale.dtype) * self.weight_scale

        def extra_repr(self) -> str:
            math = ", fp8 GEMM forward" + (" and input gradient" if self.weight_fp8_t is not None else "") if self.matmul else ""
            return f"in_features={self.in_features}, out_features={self.out_features}, fp8 e4m3 per-row scale{math}"

    return Fp8Linear


def quantize_fp8_(model, device, compute_dtype, matmul: bool = False, fp8_base: bool = True) -> dict[str, Any]:
    """Replaces every frozen nn.Linear inside the repeated blocks (peft's LoRA wrappers keep theirs
    as `base_layer`) by an Fp8Linear on `device`, one layer at a time, so the bf16 weights never
    all sit on the GPU at once. Everything else of the model moves to `device` afterwards.
    fp8_base (the memory lever): one fp8 copy, half the bytes. matmul: fp8 GEMMs for the forward,
    and without fp8_base for the input gradient too, from a second, transposed copy (the bytes of
    bf16). Returns counts for the log."""
    import torch

    Fp8Linear = fp8_linear_class()
    names = set(repeated_block_names(model))
    replaced, params_before = 0, 0
    for block in [m for m in model.modules() if type(m).__name__ in names]:
        for parent in list(block.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is torch.nn.Linear and not child.weight.requires_grad:
                    params_before += child.weight.numel()
                    setattr(parent, child_name, Fp8Linear(child, device, compute_dtype, matmul=matmul, transposed=matmul and not fp8_base))
                    replaced += 1
    model.to(device)
    return {"layers": replaced, "params": params_before}


# Eager steps before the whole-step capture. One creates what the capture needs to exist beforehand (the fused
# AdamW's state, cuBLAS handles, the autograd engine's device threads); torch's example warms up 3 (for DDP's
# buckets, which this capture never holds). SDXL's eager step costs ~4x a replay (0.4 vs 0.1 s on an H100),
# so each extra warm-up step was ~0.3 s of a whole run (issue 22).
GRAPH_WARMUP_STEPS = 1


class GraphedStep:
    """One whole training step (loss, backward, grad-norm clip, optimizer step) captured once as
    a CUDA graph and replayed: the launch-bound case (SDXL at batch 1 spends most of a step in
    Python and kernel launches) becomes one launch. Eager steps run until `warmup` steps are done
    (optimizer state, cuBLAS workspaces and autograd need them), then the next step is captured.

    Needs: the arch's `draw`/`loss_from`/`static_extra` split (random inputs drawn outside the
    graph and copied into static buffers), fixed shapes, no gradient checkpointing (it reads the
    RNG state on the host), gradient accumulation 1, and an optimizer built with capturable=True
    (make_capturable_adamw). Returns the loss tensor of the step (read it after the step)."""

    def __init__(self, arch, params, optimizer, max_grad_norm: float = 1.0, warmup: int = GRAPH_WARMUP_STEPS):
        self.arch = arch
        self.params = params
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.warmup = warmup
        self.done = 0
        self.graph = None
        self.static = None
        self.failed = False
        self.side = None

    def captures_next(self) -> bool:
        """The next step captures the graph (no other thread may touch the GPU meanwhile: a periodic
        save's writer waits first, train/loop.py)."""
        return self.graph is None and not self.failed and self.done >= self.warmup

    def _eager(self, latents, text, extra, draws):
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        loss = self.arch.loss_from(latents, text, extra, draws)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm, foreach=True)
        self.optimizer.step()
        return loss.detach()

    def step(self, latents, text: dict, extra: dict, generator):
        import torch

        draws = self.arch.draw(latents, generator)
        if self.graph is None and self.done < self.warmup:
            # Warm-up steps on one side stream (torch.cuda.graphs' recipe). The loss comes back
            # detached: a loss still holding its autograd graph keeps the parameters'
            # AccumulateGrad nodes alive, bound to this stream, and the capture's backward then
            # waits on a stream outside the capture ("operation failed due to a previous error
            # during capture", seen on an H200 at SDXL batch 4).
            self.done += 1
            if self.side is None:
                self.side = torch.cuda.Stream()
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                loss = self._eager(latents, text, self.arch.static_extra(extra, latents.device), draws)
            torch.cuda.current_stream().wait_stream(self.side)
            return loss
        if self.failed:
            return self._eager(latents, text, self.arch.static_extra(extra, latents.device), draws)
        if self.graph is None:
            try:
                self._capture(latents, text, extra, draws)
            except Exception as e:  # noqa: BLE001 - an op that cannot be captured: train on, eagerly
                if is_oom(e):
                    raise
                self.failed, self.graph = True, None
                torch.cuda.synchronize()
                self.optimizer.zero_grad(set_to_none=True)
                warning(f"CUDA graph capture failed ({type(e).__name__}: {str(e).splitlines()[0][:160]}); training on without it",
                        code="W_CUDA_GRAPH_FALLBACK")
                return self._eager(latents, text, self.arch.static_extra(extra, latents.device), draws)
        # every replay (the capture itself ran nothing): copy this step's inputs in, then launch
        self.static["latents"].copy_(latents)
        for k, v in text.items():
            self.static["text"][k].copy_(v)
        for k, v in self.arch.static_extra(extra, latents.device).items():
            self.static["extra"][k].copy_(v)
        for k, v in draws.items():
            self.static["draws"][k].copy_(v)
        self.graph.replay()
        return self.static["loss"]


    def _capture(self, latents, text, extra, draws) -> None:
        import torch

        self.static = {"latents": latents.clone(), "text": {k: v.clone() for k, v in text.items()},
                       "extra": self.arch.static_extra(extra, latents.device), "draws": {k: v.clone() for k, v in draws.items()}}
        self.optimizer.zero_grad(set_to_none=True)
        # The graph gets its own memory pool: hand the eager steps' cached blocks back first,
        # or both pools stay reserved (measured: 28.5 GiB reserved for 12.9 GiB allocated).
        torch.cuda.synchronize()
        gc.collect()  # no autograd graph of an earlier step may outlive it (see step)
        torch.cuda.empty_cache()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss = self.arch.loss_from(self.static["latents"], self.static["text"], self.static["extra"], self.static["draws"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm, foreach=True)
            self.optimizer.step()
        self.static["loss"] = loss
        self.graph = graph
        emit({"type": "log", "level": "info", "message": f"CUDA graph captured after {self.done} warm-up steps; each step is now one replay"})


def make_capturable_adamw(params, lr: float, device, **kwargs):
    """Fused AdamW whose state and learning rate live on the GPU, so a CUDA graph can replay its
    step; the LR scheduler fills the lr tensor in place."""
    import torch

    return torch.optim.AdamW(params, lr=torch.tensor(lr, device=device), fused=True, capturable=True, **kwargs)


# float8 tensor cores: Ada (8.9), Hopper (9.0) and later.
FP8_MATMUL_CAPABILITY = (8, 9)


def fp8_matmul_blockers(device) -> list[str]:
    import torch

    if device.type != "cuda":
        return ["no CUDA device"]
    cap = torch.cuda.get_device_capability(device)
    if cap < FP8_MATMUL_CAPABILITY:
        return [f"{torch.cuda.get_device_name(device)} (compute capability {cap[0]}.{cap[1]}) has no float8 tensor cores"]
    error = rowwise_fp8_gemm_error(device.index or 0)
    if error:
        # torch's row-wise kernel is Hopper's (pytorch #133612, #135718); sm120 cuBLAS refuses it (#192707)
        return [f"torch {torch.__version__} cannot run a row-wise scaled fp8 GEMM on {torch.cuda.get_device_name(device)} ({error})"]
    return []


@functools.cache
def rowwise_fp8_gemm_error(index: int) -> str | None:
    """One small row-wise scaled fp8 GEMM on the device, once per process: None when it runs, else why not."""
    import torch

    try:
        dev = torch.device("cuda", index)
        a = torch.ones(16, 32, device=dev).to(torch.float8_e4m3fn)
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1, device=dev), scale_b=torch.ones(1, 16, device=dev), out_dtype=torch.bfloat16)
        torch.cuda.synchronize(dev)
        return None
    except Exception as e:  # noqa: BLE001 - any refusal means: train with bf16 GEMMs
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


# Test hooks (the request's `debug`, core's table debugHooks) that act between steps or before one (train/loop.py),
# never inside the captured step: a run with them keeps its CUDA graph, so a test of cut-and-resume exercises the
# graph it tests. Any other hook turns the graph off.
DEBUG_HOOKS_OUTSIDE_THE_STEP = frozenset(k for k, hook in builtin_trainer()["debugHooks"].items() if hook["outsideStep"])


def refuse_levers(cfg, device, arch, codes: dict) -> dict:
    """The levers as this run applies them: the request's (core decided each one), except what this
    device or run cannot do, each turned off with its coded warning (`codes`: the table's refusals).
    Returns {compile, cuda_graphs, channels_last, fp8_matmul}. Never turns a lever on."""
    cuda = device.type == "cuda"
    applied = {"compile": cfg.compile, "cuda_graphs": cfg.cuda_graphs, "channels_last": cfg.channels_last, "fp8_matmul": cfg.fp8_matmul}

    def refuse(lever: str, blockers: list[str]) -> None:
        if applied[lever] and blockers:
            warning(f"{lever} is off for this run: " + "; ".join(blockers), code=codes[lever])
            applied[lever] = False

    refuse("cuda_graphs", [why for bad, why in (
        (not cuda, "no CUDA device"),
        (not hasattr(arch, "loss_from"), f"{cfg.arch}'s loss has no draw / loss_from split"),
        (bool(set(cfg.debug) - DEBUG_HOOKS_OUTSIDE_THE_STEP), "debug hooks inside the step: " + ", ".join(sorted(set(cfg.debug) - DEBUG_HOOKS_OUTSIDE_THE_STEP))),
    ) if bad])
    refuse("compile", ["no CUDA device"] if not cuda else [])
    # NHWC is cuDNN's fast path; on the CPU it slowed the toy demo's UNet step many times over.
    refuse("channels_last", ["no CUDA device"] if not cuda else [])
    # The blockers (a probe GEMM on the device) only where the lever is asked for.
    refuse("fp8_matmul", fp8_matmul_blockers(device) if applied["fp8_matmul"] else [])
    return applied
