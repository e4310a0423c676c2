"""Selective activation checkpointing (issue 22; the request's checkpointing_mode "selective").

Full checkpointing (diffusers' enable_gradient_checkpointing) keeps only each block's input and
runs the whole block forward again in the backward pass: every matmul twice. Selective
checkpointing keeps what is cheap to store and costly to recompute, and recomputes the rest, with
torch.utils.checkpoint's create_selective_checkpoint_contexts
(https://docs.pytorch.org/docs/stable/checkpoint.html, "selective activation checkpoint").
The trainer's policy is core's (builtin-trainer.json selectiveCheckpointingKeep, PRODUCT_KEEP):
"attention" keeps only the fused attention kernels' outputs (one tokens x hidden tensor per block)
and recomputes every matmul once more. On the H200 (FLUX.1, FA4, compile + fp8 GEMMs + LoRA bf16,
2026-12-06) it ran 0.345 s/step at 26.2 GiB against full checkpointing's 0.465 at 24.7. The other
policy, "matmul+attention" (torchtitan's save list: mm, SDPA, scaled mm; the trainer's until then),
kept 42.1 GiB there, about no checkpointing's memory, so only the bench runs it (its row 44).
The loss and gradients are those of eager (tests/test_selective_ckpt.py).

How: each repeated block (the denoiser's `_repeated_blocks`, the units regional compile compiles)
gets a subclass of its own class whose forward runs the original one under checkpoint(...,
context_fn=the policy). The checkpoint thus sits inside the block's forward, inside what
speed.compile_blocks compiles, where torch.compile turns it into its activation-checkpoint region
and keeps the policy; module names, state-dict keys and the class name stay as they were.
"""

from __future__ import annotations

import functools

from .. import speed
from .config import TABLE


_MATMULS = (("mm", "default"), ("addmm", "default"), ("bmm", "default"), ("baddbmm", "default"), ("_scaled_mm", "default"))
_ATTENTION = (("_scaled_dot_product_flash_attention", "default"), ("_scaled_dot_product_efficient_attention", "default"),
              ("_scaled_dot_product_cudnn_attention", "default"), ("_scaled_dot_product_flash_attention_for_cpu", "default"))
# What each policy keeps: "attention" (the trainer's, PRODUCT_KEEP: only the attention outputs, the costliest op per byte
# kept; every matmul of the block is recomputed once more) or "matmul+attention" (torchtitan's list; bench rows only).
KEEPS = {"attention": _ATTENTION, "matmul+attention": _MATMULS + _ATTENTION}
# The policy checkpointing_mode "selective" runs: core's, one home (knowledge/builtin-trainer.ts selectiveCheckpointingKeep).
PRODUCT_KEEP: str = TABLE["selectiveCheckpointingKeep"]


@functools.cache
def saved_ops(keep: str) -> frozenset:
    """The aten ops whose outputs are kept under `keep` (KEEPS): matmuls (base, LoRA, fp8) and/or fused attention kernels."""
    import torch

    aten = torch.ops.aten
    ops = []
    for name, overload in KEEPS[keep]:
        packet = getattr(aten, name, None)
        if packet is not None and hasattr(packet, overload):
            ops.append(getattr(packet, overload))
    return frozenset(ops)


def matmul_attention_policy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in saved_ops("matmul+attention") else CheckpointPolicy.PREFER_RECOMPUTE


def attention_policy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in saved_ops("attention") else CheckpointPolicy.PREFER_RECOMPUTE


def matmul_attention_context_fn():
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(matmul_attention_policy)


def attention_context_fn():
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(attention_policy)


# A module-level function per policy (not a partial): torch.compile traces the checkpoint's context_fn as a constant.
_CONTEXTS = {"attention": attention_context_fn, "matmul+attention": matmul_attention_context_fn}
_POLICIES = {"attention": attention_policy, "matmul+attention": matmul_attention_policy}


def policy_cache_hash(keep: str) -> str:
    """What makes policy `keep` decide as it does: its name, the ops it keeps and the policy's code. torch's
    AOTAutograd cache keys a graph with a selective-checkpoint region by its context_fn's `cache_hash` and
    bypasses the cache for a context_fn without one (torch 2.13 autograd_cache._collect_context_fn_hashes:
    "SAC context_fn does not have a cache_hash attribute"), so every warm start re-traced and re-partitioned
    each block's joint graph (compile_cache.py)."""
    import hashlib

    code = _POLICIES[keep].__code__
    spec = repr((keep, KEEPS[keep], code.co_code, code.co_names, code.co_consts))
    return f"loraspec-sac-{keep}-" + hashlib.sha256(spec.encode()).hexdigest()[:16]


for _keep, _fn in _CONTEXTS.items():
    _fn.cache_hash = policy_cache_hash(_keep)


def _selective_class(cls: type, keep: str = PRODUCT_KEEP) -> type:
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


def apply(model, keep: str = PRODUCT_KEEP) -> int:
    """Puts every repeated block of `model` under selective checkpointing keeping `keep` (KEEPS; the trainer's: PRODUCT_KEEP).
    Returns how many."""
    names = set(speed.repeated_block_names(model))
    count = 0
    for module in model.modules():
        cls = type(module)
        if cls.__name__ in names and not getattr(cls, "_loraspec_selective_ckpt", False):
            module.__class__ = _selective_class(cls, keep)
            count += 1
    return count
