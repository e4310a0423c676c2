"""Selective activation checkpointing (issue 22; the request's checkpointing_mode "selective").

Full checkpointing (diffusers' enable_gradient_checkpointing) keeps only each block's input and
runs the whole block forward again in the backward pass: every matmul twice. Selective
checkpointing keeps what is costly to recompute and cheap to store per FLOP - the outputs of the
matmuls and of attention - and recomputes only the element-wise ops between them (norms,
modulation, RoPE, GELU, residual adds), with torch.utils.checkpoint's
create_selective_checkpoint_contexts (https://docs.pytorch.org/docs/stable/checkpoint.html,
"selective activation checkpoint"; the same save list as torchtitan's selective AC:
mm, SDPA, scaled mm). The loss and gradients are those of eager (tests/test_selective_ckpt.py).

How: each repeated block (the denoiser's `_repeated_blocks`, the units regional compile compiles)
gets a subclass of its own class whose forward runs the original one under checkpoint(...,
context_fn=the policy). The checkpoint thus sits inside the block's forward, inside what
speed.compile_blocks compiles, where torch.compile turns it into its activation-checkpoint region
and keeps the policy; module names, state-dict keys and the class name stay as they were.
"""

from __future__ import annotations

import functools

from .. import speed


_MATMULS = (("mm", "default"), ("addmm", "default"), ("bmm", "default"), ("baddbmm", "default"), ("_scaled_mm", "default"))
_ATTENTION = (("_scaled_dot_product_flash_attention", "default"), ("_scaled_dot_product_efficient_attention", "default"),
              ("_scaled_dot_product_cudnn_attention", "default"), ("_scaled_dot_product_flash_attention_for_cpu", "default"))
# What each policy keeps: "matmul+attention" (the trainer's: torchtitan's list) or "attention" (issue 22's bench row 43:
# only the attention outputs, the costliest op per byte kept; every matmul of the block is recomputed once more).
KEEPS = {"matmul+attention": _MATMULS + _ATTENTION, "attention": _ATTENTION}


@functools.cache
def saved_ops(keep: str = "matmul+attention") -> frozenset:
    """The aten ops whose outputs are kept under `keep` (KEEPS): matmuls (base, LoRA, fp8) and/or fused attention kernels."""
    import torch

    aten = torch.ops.aten
    ops = []
    for name, overload in KEEPS[keep]:
        packet = getattr(aten, name, None)
        if packet is not None and hasattr(packet, overload):
            ops.append(getattr(packet, overload))
    return frozenset(ops)


def policy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in saved_ops() else CheckpointPolicy.PREFER_RECOMPUTE


def attention_policy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in saved_ops("attention") else CheckpointPolicy.PREFER_RECOMPUTE


def context_fn():
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(policy)


def attention_context_fn():
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(attention_policy)


# A module-level function per policy (not a partial): torch.compile traces the checkpoint's context_fn as a constant.
_CONTEXTS = {"matmul+attention": context_fn, "attention": attention_context_fn}


def _selective_class(cls: type, keep: str = "matmul+attention") -> type:
    return _selective_class_for(cls, keep)  # one cache key however it is called


@functools.cache
def _selective_class_for(cls: type, keep: str) -> type:
    """cls with its forward under selective checkpointing (policy `keep`) while gradients are on (one subclass per
    block class, so regional compile still shares one compiled graph between the blocks of a kind)."""
    chosen = _CONTEXTS[keep]

    def forward(self, *args, **kwargs):
        import torch
        from torch.utils.checkpoint import checkpoint

        # The original forward is reached through the instance (a bound method): torch.compile
        # cannot trace `cls.forward` looked up on the class (a graph break that left every block eager).
        if not torch.is_grad_enabled():
            return self._loraspec_block_forward(*args, **kwargs)
        return checkpoint(self._loraspec_block_forward, *args, use_reentrant=False, context_fn=chosen, **kwargs)

    sub = type(cls.__name__, (cls,), {"forward": forward, "_loraspec_block_forward": cls.forward, "__module__": cls.__module__,
                                      "_loraspec_selective_ckpt": True})
    sub.__qualname__ = cls.__qualname__
    return sub


def apply(model, keep: str = "matmul+attention") -> int:
    """Puts every repeated block of `model` under selective checkpointing keeping `keep` (KEEPS). Returns how many."""
    names = set(speed.repeated_block_names(model))
    count = 0
    for module in model.modules():
        cls = type(module)
        if cls.__name__ in names and not getattr(cls, "_loraspec_selective_ckpt", False):
            module.__class__ = _selective_class(cls, keep)
            count += 1
    return count
