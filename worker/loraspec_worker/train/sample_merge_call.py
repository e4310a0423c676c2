"""FLUX's in-training samples with the LoRA merged per call (core's BUILTIN_TRAINER.sampleMerge.perCallArches;
train/sample_merge.py says why per call and what the buffered SDXL variant does).

While a sample renders (CallMergedLora.merged), the denoiser's layers run as a plain denoiser's:
- each LoRA layer: F.linear(x, W + sum(scale x B) @ A, bias), W' made for the call by one addmm in the compute
  dtype (rounded once) and dropped after it; W is the base layer's weight, or a speed.Fp8Linear's fp8 copy
  dequantized (fp8_matmul keeps no bf16 weights);
- every other speed.Fp8Linear of the denoiser: F.linear(x, its weight dequantized, bias), the fp8 GEMM and
  its per-call activation quantization left for the training step.
The factors (scale x B and A in the compute dtype) are made once per sample from the LoRA as it is then
(inside regularize.Ema.applied with EMA on: the shadow). Nothing is written: the base weights, their fp8
copies and scales, the LoRA parameters, gradients and optimizer state are only read; each patched layer's
own instance forward (or none) is put back after the sample, and compiled blocks run force_eager meanwhile
(train/samples.py _eager), so the training's graphs never see the patches.
"""

from __future__ import annotations

from typing import Any, Optional

from ..protocol import emit
from .sample_merge import NotMergeable, SampleMerge, _fp8_linear_class, _lora_layers


class CallMergedLora(SampleMerge):
    """The denoiser's LoRA layers merged per call, its other fp8 linears dequantized per call (found at the first sample)."""

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.layers: Optional[list[tuple[Any, Any, Any, list[str]]]] = None  # (LoRA layer, W or Fp8Linear, bias, adapters)
        self.plain: list[Any] = []  # the Fp8Linears outside the LoRA layers
        self.dtype = None

    def factors(self) -> list[list[tuple[Any, Any]]]:
        """Per LoRA layer, per adapter: (scale x B, A) in the compute dtype (B scaled in fp32, rounded once)."""
        import torch

        out = []
        with torch.no_grad():
            for m, _w, _bias, adapters in self.layers or ():
                out.append([((m.lora_B[a].weight.float() * float(m.scaling[a])).to(self.dtype), m.lora_A[a].weight.to(self.dtype)) for a in adapters])
        return out

    def _replacements(self, timer) -> list:
        """The denoiser's plain forward: LoRA merged per call, the other fp8 linears dequantized."""
        factors = self.factors()
        replacements = [(m, _merged_linear(w, bias, f)) for (m, w, bias, _adapters), f in zip(self.layers, factors)]
        return replacements + [(m, _dequantized_linear(m)) for m in self.plain]

    def _make(self) -> None:
        try:
            layers = _lora_layers(self.denoiser, fp8=True)
        except NotMergeable as e:
            self._refuse(e)
            return
        fp8_linear = _fp8_linear_class()
        inside = {id(m.get_base_layer()) for m, *_ in layers}
        self.plain = [m for m in self.denoiser.modules() if type(m) is fp8_linear and id(m) not in inside]
        self.layers = layers
        self.dtype = _dtype(layers[0][1])
        fp8 = sum(type(w) is fp8_linear for _m, w, *_ in layers)
        held = f" ({fp8} over fp8 copies, dequantized)" if fp8 else ""
        emit({"type": "log", "level": "info", "message": f"sample merge: {len(layers)} LoRA layers merged per call in {str(self.dtype).removeprefix('torch.')}"
                                                         f"{held}, {len(self.plain)} other fp8 linears dequantized; samples run the plain denoiser"})


def _dtype(w):
    return w.weight_scale.dtype if hasattr(w, "weight_fp8") else w.dtype


def _weight(w):
    """W in the compute dtype: the tensor, or an Fp8Linear's fp8 copy dequantized (its own dequantized())."""
    return w.dequantized() if hasattr(w, "weight_fp8") else w


def _merged_linear(w, bias, factors):
    import torch
    import torch.nn.functional as F

    def forward(x, *args, **kwargs):
        merged = _weight(w)
        for scaled_b, a in factors:
            merged = torch.addmm(merged, scaled_b, a)  # out of place: W (or the dequantized copy) is never written
        return F.linear(x.to(merged.dtype), merged, bias)

    return forward


def _dequantized_linear(layer):
    import torch.nn.functional as F

    def forward(x):
        w = layer.dequantized()
        return F.linear(x.to(w.dtype), w, layer.bias)

    return forward
