"""`train` and `train-rank`: run a request (OOM fallbacks, data-parallel groups, coded errors)."""

from __future__ import annotations

import gc
import os

from .. import distributed
from ..protocol import Cancelled, WorkerError, is_oom, warning
from .config import Config, parse_config
from .loop import Diverged, train_once
from .model import choose_device

def _no_graph(cfg: Config) -> str:
    """The CUDA graph (and its NHWC layout) replays one plain AdamW step without checkpointing or
    accumulation: a fallback that changes those turns it off too."""
    if not cfg.cuda_graphs:
        return ""
    cfg.cuda_graphs = cfg.channels_last = False
    return " (and off the CUDA graph)"


def _checkpointing(cfg: Config) -> str:
    if cfg.gradient_checkpointing:
        return ""
    cfg.gradient_checkpointing = True
    return "turned on gradient checkpointing" + _no_graph(cfg)


def _quantize_base(cfg: Config) -> str:
    if cfg.quantize == "fp8":
        return ""
    cfg.quantize = "fp8"
    return "held the base in fp8"


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
    cfg = parse_config(request)
    if cfg.num_processes > 1:
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
    """Rank 0 of a data-parallel run: starts the other ranks and trains with them. OOM fallbacks
    are not retried here (every rank would have to restart together); the error says what to change."""
    device = choose_device(cfg)
    group = distributed.start(request, cfg.num_processes, device.type)
    try:
        result = train_once(cfg, group)
        result["fallbacksApplied"] = []
        return result
    except Diverged as e:
        raise WorkerError("E_TRAIN_DIVERGED", f"training diverged: {e}; no LoRA was saved for this step",
                          hint="lower learning_rate, add warmup_steps, or check the dataset for broken images") from None
    except Exception as e:  # noqa: BLE001
        if is_oom(e):
            raise WorkerError("E_OUT_OF_MEMORY", f"out of memory while training on {cfg.num_processes} GPUs: {str(e).splitlines()[0][:200]}",
                              hint=OOM_HINT, retryable=True) from None
        raise
    finally:
        group.close()


def _free_cuda() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def run_rank(request: dict) -> dict:
    """`train-rank`: a child rank (started by distributed.start). Trains its share silently; rank 0
    reports and saves."""
    from .. import protocol

    protocol._out = open(os.devnull, "w")  # noqa: SIM115 - only rank 0 speaks on the event stream
    group = distributed.rank_from_env()
    if group is None:
        raise WorkerError("E_USAGE", "train-rank is started by a training run with num_processes > 1, not by hand")
    cfg = parse_config(request)
    port = int(os.environ["LORASPEC_MASTER_PORT"])
    import torch

    device_type = "cuda" if (cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda") else "cpu"
    group.join(device_type, port)
    try:
        return train_once(cfg, group)
    except (Diverged, Cancelled) as e:
        # decided together with rank 0, which reports it; this rank just ends
        return {"stopped": True, "reason": str(e)}
    finally:
        group.close()
