"""In-training samples with the LoRA merged into a second set of the targeted base weights (issue 22).

What a sample pays per UNet forward on the LoRA path is ~560 (attention preset) to 722 (all-linear) peft
LoRA modules, each casting its input to the fp32 LoRA dtype and running 5-6 small kernels beside the base
GEMM; SDXL's sample graph (train/sample_graph.py) replays them all. Here, before each sample, every
targeted layer's W' = W + scale x B @ A (summed over the active adapters; the sum in fp32, rounded once to
the base's dtype) is written into a buffer allocated once, at the first sample, and kept for the run (static
addresses: the sample graph captured over them stays valid); while the sample renders, each LoRA layer's
forward is F.linear(x, W', bias), the plain layer. The base weights W, the LoRA parameters, their
gradients and optimizer state are only read; the training step's graph never sees the buffers; nothing
draws from an RNG. The buffers are recomputed at every sample from the parameters as they are then
(with EMA on, inside regularize.Ema.applied: the shadow).

Rounding: W' holds W + delta rounded to the base's dtype, as a merged LoRA file loaded in that dtype does
(diffusers fuse_lora, ComfyUI's weight patches); the LoRA path adds the delta's product in fp32 before
rounding the output. With a bf16 base the two differ by bf16's rounding of W' (2^-9 relative per weight).

Core decides which (plan/sample-merge.ts over BUILTIN_TRAINER.sampleMerge: arches, network types; an fp8 base
keeps the LoRA path), sends it as the request's sample_merge (buffers, per_call, none, compiled) and counts the
buffers in the VRAM plan (plan/vram-extras.ts sampleMergeGb); make() builds the variant the run applies (the
request's; per_call for compiled where the run does not compile, setup.applied_sample_merge). Only the denoiser's LoRA
merges: a text encoder that trains its own LoRA (train_text_encoder) encodes the prompts on its LoRA path.
A layer that is not a plain peft LoRA Linear over an nn.Linear, or no memory for the buffers, keeps the
LoRA path for the rest of the run, with one warning of the table's code.

Per call (CallMergedLora, sample_merge per_call; core's perCallArches: FLUX.1, FLUX.2 [klein], eager samples): no
buffers. While a sample renders, each LoRA layer's forward is F.linear(x, W + (scale x B) @ A) with W' made
for the call (one addmm, rounded once to the compute dtype) and dropped after it, and every other fp8
linear of the denoiser (speed.Fp8Linear) runs F.linear over its weight dequantized to the compute dtype.
With fp8_matmul the base keeps no bf16 weights (two fp8 copies), so W is the fp8 copy dequantized, and the
sample is the plain bf16 forward over the weights as held: no per-call activation quantization, no fp32
LoRA path (tiny FLUX.1 with fp8_matmul: 271 -> 105 aten ops per double block, 119 -> 50 per single block). The LoRA factors
(scale x B and A, in the compute dtype) are made once per sample.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional

from ..protocol import emit, warning
from .config import TABLE

# The warning code of a merge this run's layers cannot take (core's BUILTIN_TRAINER.sampleMerge); which merge a
# run's samples use is the request's sample_merge, core's decision.
WARNING = TABLE["sampleMerge"]["warning"]


class NotMergeable(Exception):
    """A LoRA layer this module cannot merge exactly (the samples keep the LoRA path)."""


class _Layer:
    """One LoRA layer: its base weight and bias, the adapters merged, the merged buffer."""

    __slots__ = ("module", "weight", "bias", "adapters", "merged")

    def __init__(self, module, weight, bias, adapters: list[str], merged):
        self.module, self.weight, self.bias, self.adapters, self.merged = module, weight, bias, adapters, merged


class SampleMerge:
    """What both merges share: the layers found at the first sample (or the fallback, warned once), and
    merged(): for a sample's duration each patched layer's forward replaced, then restored as found.
    Subclasses find their layers (_make) and build the forwards for this sample (_replacements, timed as
    the samples log's "merge" part)."""

    layers: Optional[list] = None
    failed = False

    @contextlib.contextmanager
    def merged(self, timer=None):
        if self.layers is None and not self.failed:
            self._make()
        if self.failed:
            yield
            return
        with timer.part("merge") if timer is not None else contextlib.nullcontext():
            replacements = self._replacements(timer)
        with patched_forwards(replacements):
            yield

    def _refuse(self, e: Exception) -> None:
        """Samples keep the LoRA path for the rest of the run, with one warning of the table's code."""
        self.failed = True
        warning(f"samples keep the LoRA path ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})", code=WARNING)

    def _make(self) -> None:
        raise NotImplementedError

    def _replacements(self, timer) -> list:
        raise NotImplementedError


class MergedLora(SampleMerge):
    """The denoiser's LoRA layers with their merged buffers (made at the first sample)."""

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.layers: Optional[list[_Layer]] = None
        self.bytes = 0

    def refresh(self) -> None:
        """W' = W + sum(scale x B @ A) into each buffer (in fp32, rounded once to W's dtype)."""
        import torch

        with torch.no_grad():
            for layer in self.layers or ():
                acc = layer.weight.float()
                for name in layer.adapters:
                    m = layer.module
                    a, b = m.lora_A[name].weight.float(), m.lora_B[name].weight.float()
                    acc = torch.addmm(acc, b, a, alpha=float(m.scaling[name]))  # out of place: W itself is never written
                layer.merged.copy_(acc)

    def _replacements(self, timer) -> list:
        """The LoRA layers run on their refreshed merged weights (a sample render)."""
        self.refresh()
        if timer is not None:
            timer.sync(self.layers[0].merged)
        return [(layer.module, _linear(layer.merged, layer.bias)) for layer in self.layers]

    def _make(self) -> None:
        import torch

        try:
            found = _lora_layers(self.denoiser)
            layers = [_Layer(m, w, bias, adapters, torch.empty_like(w, memory_format=torch.contiguous_format)) for m, w, bias, adapters in found]
        except (NotMergeable, torch.OutOfMemoryError) as e:
            self._refuse(e)
            return
        self.layers = layers
        self.bytes = sum(x.merged.numel() * x.merged.element_size() for x in layers)
        dtype = str(layers[0].merged.dtype).removeprefix("torch.")
        emit({"type": "log", "level": "info", "message": f"sample merge: {len(layers)} LoRA layers merged into {self.bytes / 1e9:.2f} GB of {dtype} "
                                                         "weights beside the base's; samples run the plain denoiser"})


@contextlib.contextmanager
def patched_forwards(replacements):
    """Each (module, forward) pair's forward replaced for the duration, then restored as found (the module's own
    instance forward, or none: its class's); shared by the buffered (SDXL) and per-call (FLUX) sample merges."""
    patched = []
    try:
        for module, forward in replacements:
            patched.append((module, module.__dict__.get("forward")))
            module.forward = forward
        yield
    finally:
        for module, previous in reversed(patched):
            if previous is None:
                del module.forward
            else:
                module.forward = previous


def _linear(weight, bias):
    import torch.nn.functional as F

    def forward(x):
        return F.linear(x, weight, bias)

    return forward


def _lora_layers(denoiser, fp8: bool = False) -> list[tuple[Any, Any, Any, list[str]]]:
    """(layer, W, bias, adapters) of every adapter layer in the denoiser; NotMergeable for one that is not
    a plain peft LoRA Linear over an nn.Linear in a floating dtype (LoKr, LoHa, DoRA and other variants, a
    LoRA bias, fan_in_fan_out, a conv, an fp8 layer), or when there is none. With `fp8`, a base layer may be
    a speed.Fp8Linear (W: the layer itself, dequantized per call)."""
    import torch
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.tuners_utils import BaseTunerLayer

    fp8_linear = _fp8_linear_class() if fp8 else None
    out = []
    for name, m in denoiser.named_modules():
        if not isinstance(m, BaseTunerLayer):
            continue
        if type(m) is not LoraLinear:
            raise NotMergeable(f"{name} is a {type(m).__module__}.{type(m).__name__}, not a plain LoRA Linear")
        base = m.get_base_layer()
        if fp8_linear is not None and type(base) is fp8_linear:
            weight = base
        elif type(base) is not torch.nn.Linear or not base.weight.is_floating_point() or base.weight.dtype.itemsize < 2:
            raise NotMergeable(f"{name}'s base layer is a {type(base).__name__} of {getattr(getattr(base, 'weight', None), 'dtype', None)}")
        else:
            weight = base.weight
        if m.merged or m.disable_adapters or m.fan_in_fan_out:
            raise NotMergeable(f"{name}: merged {m.merged}, adapters disabled {m.disable_adapters}, fan_in_fan_out {m.fan_in_fan_out}")
        adapters = [a for a in m.active_adapters if a in m.lora_A]
        for a in adapters:
            if a in getattr(m, "lora_variant", {}) or getattr(m, "use_dora", {}).get(a) or getattr(m, "lora_bias", {}).get(a):
                raise NotMergeable(f"{name}: adapter {a} is a LoRA variant (DoRA) or has a bias")
        out.append((m, weight, base.bias, adapters))
    if not out:
        raise NotMergeable("the denoiser has no LoRA layer")
    return out


def _fp8_linear_class():
    from .. import speed

    return speed.fp8_linear_class()


def _call_merged(denoiser):
    from .sample_merge_call import CallMergedLora

    return CallMergedLora(denoiser)


# The request's sample_merge values (the schema's enum; test_sync.py holds them equal) and what each builds.
# "compiled": no merge either; the samples run the LoRA path through the training's compiled blocks (train/samples.py).
VARIANTS = {"buffers": MergedLora, "per_call": _call_merged, "none": None, "compiled": None}


def make(mode: str, denoiser):
    """The merge a sample_merge value names (core's choice, as the run applies it): buffers made at the first sample
    (MergedLora), per call (CallMergedLora), or None for "none" and "compiled": samples keep the LoRA path. Layers that
    cannot merge refuse at the first sample (NotMergeable: the LoRA path, with the WARNING code)."""
    variant = VARIANTS[mode]  # parse_config validated the request's value against the request schema
    return variant(denoiser) if variant is not None else None


def merged(m: Optional[MergedLora], timer=None):
    return m.merged(timer) if m is not None else contextlib.nullcontext()
