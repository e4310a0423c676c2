"""`train` and `train-rank`: run a request (OOM fallbacks, data-parallel groups, coded errors)."""

from __future__ import annotations

import gc
import os
import signal

from .. import distributed, launch, protocol
from ..protocol import Cancelled, WorkerError, is_oom, warning
from .config import Config, parse_config
from .loop import train_once
from .steps import Diverged
from .model import choose_device

def _no_graph(cfg: Config) -> str:
    """The CUDA graph (and its NHWC layout) replays one plain AdamW step without checkpointing or
    accumulation: a fallback that changes those turns it off too."""
    if not cfg.cuda_graphs:
        return ""
    cfg.cuda_graphs = cfg.channels_last = False
    return " (and off the CUDA graph)"


def _checkpointing(cfg: Config) -> str:
    if cfg.gradient_checkpointing and cfg.checkpointing_mode == "selective":
        cfg.checkpointing_mode = "full"  # selective keeps more than full: full is the next step down
        return "selective -> full gradient checkpointing"
    if cfg.gradient_checkpointing:
        return ""
    cfg.gradient_checkpointing = True
    return "turned on gradient checkpointing" + _no_graph(cfg)


def _quantize_base(cfg: Config) -> str:
    # DoRA/LoKr/LoHa read the base layer's weight, which an fp8 linear does not keep (network.py)
    if cfg.quantize == "fp8" or cfg.network_type != "lora":
        return ""
    cfg.quantize = "fp8"
    return "held the base in fp8" + _no_sample_merge(cfg)


def _no_sample_merge(cfg: Config) -> str:
    """Core's sample_merge was chosen for a base in its own dtype (an fp8 base keeps the LoRA path:
    plan/sample-merge.ts): the fallback that holds the base in fp8 turns the merge off too."""
    if cfg.sample_merge == "none":
        return ""
    cfg.sample_merge = "none"
    return " (and samples on the LoRA path, not merged)"


def _smaller_batch(cfg: Config) -> str:
    if cfg.batch_size <= 1:
        return ""
    cfg.gradient_accumulation *= 2
    cfg.batch_size = max(1, cfg.batch_size // 2)
    return f"batch {cfg.batch_size} x accumulation {cfg.gradient_accumulation}" + _no_graph(cfg)


def _optimizer_8bit(cfg: Config) -> str:
    if cfg.optimizer == "adamw8bit":
        return ""
    cfg.optimizer = "adamw8bit"
    return "switched to adamw8bit" + _no_graph(cfg)


# The OOM fallbacks the worker applies itself: the table's `oomFallbacks` (test_sync.py holds them
# equal). Each returns what it changed, or "" when it cannot change anything more.
FALLBACKS = {"gradient_checkpointing": _checkpointing, "smaller_batch": _smaller_batch, "optimizer_8bit": _optimizer_8bit, "quantize_base": _quantize_base}


def apply_fallback(cfg: Config, fallback: str) -> str:
    return FALLBACKS[fallback](cfg) if fallback in FALLBACKS else ""


OOM_HINT = "lower batch_size or resolution, turn on gradient_checkpointing, use adamw8bit, or allow failure.oom_fallbacks"


def run(request: dict) -> dict:
    protocol.start_run_clock()
    cfg = parse_config(request)
    if cfg.num_processes > 1 or cfg.nodes:  # several ranks, here or on several hosts: torchrun
        return _run_group(cfg, request)
    pending = [f for f in cfg.oom_fallbacks] if cfg.on_oom == "fallback" else []
    applied: list[str] = []
    while True:
        try:
            result = train_once(cfg)
            result["fallbacksApplied"] = applied
            return result
        except Diverged as e:
            raise WorkerError(
                "E_TRAIN_DIVERGED",
                f"training diverged: {e}; no LoRA was saved for this step",
                hint="lower learning_rate, add warmup_steps, or check the dataset for broken images",
            ) from None
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            _free_cuda()
            what = ""
            while pending and not what:
                what = apply_fallback(cfg, pending.pop(0))
            if not what:
                raise WorkerError("E_OUT_OF_MEMORY", f"out of memory while training: {str(e).splitlines()[0][:200]}", hint=OOM_HINT, retryable=True) from None
            applied.append(what)
            warning(f"out of memory; retrying with a fallback the contract allows: {what}", code="W_OOM_FALLBACK")
            if cfg.save_every:
                cfg.resume_from = "latest"


def _run_group(cfg: Config, request: dict) -> dict:
    """The supervisor of a data-parallel run: torchrun starts the ranks (launch.py), rank 0 of
    them reports. OOM fallbacks are not retried here (every rank would have to restart together);
    rank 0's error says what to change."""
    return launch.run_group(request, cfg.num_processes, cfg.nodes, choose_device(cfg).type)


def _free_cuda() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def run_rank(request: dict) -> dict:
    """`train-rank`: one rank torchrun started (launch.py). Rank 0 reports and saves; the others
    train their share silently."""
    from .. import protocol

    group = distributed.rank_from_env()
    if group is None:
        raise WorkerError("E_USAGE", "train-rank is started by a training run with num_processes > 1, not by hand")
    launch.die_with_parent(signal.SIGKILL)  # torchrun gone (killed): this rank goes too
    if not group.is_main:
        protocol._out = open(os.devnull, "w")  # noqa: SIM115 - only rank 0 speaks on the event stream
    cfg = parse_config(request)
    group.join(choose_device(cfg).type)
    try:
        return _train_rank(cfg, group)
    finally:
        group.close()


def _train_rank(cfg: Config, group) -> dict:
    try:
        return train_once(cfg, group)
    except Diverged as e:
        if group.is_main:
            raise WorkerError("E_TRAIN_DIVERGED", f"training diverged: {e}; no LoRA was saved for this step",
                              hint="lower learning_rate, add warmup_steps, or check the dataset for broken images") from None
        return {"stopped": True, "reason": str(e)}  # decided together with rank 0, which reports it
    except Cancelled as e:
        if group.is_main:
            raise
        return {"stopped": True, "reason": str(e)}
    except Exception as e:  # noqa: BLE001
        if is_oom(e):
            raise WorkerError("E_OUT_OF_MEMORY", f"out of memory while training on {group.world} GPUs: {str(e).splitlines()[0][:200]}",
                              hint=OOM_HINT, retryable=True) from None
        raise
