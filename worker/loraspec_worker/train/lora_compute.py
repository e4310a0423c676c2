"""The dtype the LoRA path computes in (the request's lora_compute; issue 22). The LoRA parameters are
fp32 master weights either way (setup.prepare_trainable); what changes is the GEMMs' dtype:

  fp32  peft's LoRA Linear casts its input to the LoRA weight's dtype (`_cast_input_dtype`), so over a
        bf16 base every adapted layer's input is copied to fp32 and the down/up GEMMs run in fp32/TF32
        (H200 SDXL eager step: the LoRA's GEMMs 18.9 ms, the casts 13.6 ms of ~102 ms GPU time).
  bf16  the LoRA path computes in its input's dtype (the base's): peft's input cast is off and lora_A /
        lora_B run F.linear(x, weight.to(x.dtype)). The weight cast is differentiable, so the gradients
        reach the fp32 parameters as fp32 (Kohya and ai-toolkit get the same numerics from bf16 autocast;
        autocast over the whole model would also upcast GroupNorm/LayerNorm, so it is not used here).

Only plain LoRA Linear layers (peft's lora.Linear without a variant) change; DoRA (a variant), LoKr, LoHa
and LoRA on convolutions keep today's path. The module class is swapped in place, so state dicts (keys,
fp32 tensors), sample_merge's reads of lora_A/lora_B, EMA, CUDA graph capture and torch.compile see the
same parameters. Over an fp32 base it is a no-op bit for bit (weight.to(float32) is the weight itself)."""

from __future__ import annotations

import functools

MODES = ("fp32", "bf16")


@functools.cache
def input_dtype_linear():
    """The class of a LoRA down/up projection that computes in its input's dtype; its parameters keep theirs
    (fp32). Made on first use: the train entry imports this module before it may import torch (test_startup.py)."""
    import torch
    import torch.nn.functional as F

    class InputDtypeLinear(torch.nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            bias = None if self.bias is None else self.bias.to(x.dtype)
            return F.linear(x, self.weight.to(x.dtype), bias)

    return InputDtypeLinear


def _plain_lora_linears(module):
    from peft.tuners.lora.layer import Linear as LoraLinear

    for m in module.modules():
        if isinstance(m, LoraLinear) and not getattr(m, "lora_variant", {}) and not any(getattr(m, "use_dora", {}).values()):
            yield m


def apply(module, mode: str) -> int:
    """Sets `module`'s plain LoRA Linear layers to compute in `mode` ("bf16": the input's dtype).
    Returns how many layers changed (0 for "fp32": today's path, untouched)."""
    if mode not in MODES:
        raise ValueError(f"lora_compute {mode!r}: one of {', '.join(MODES)}")
    if mode == "fp32":
        return 0
    import torch

    cls = input_dtype_linear()
    n = 0
    for layer in _plain_lora_linears(module):
        layer.cast_input_dtype_enabled = False
        for holder in (layer.lora_A, layer.lora_B):
            for proj in holder.values():
                if type(proj) is torch.nn.Linear:
                    proj.__class__ = cls
        n += 1
    return n
