"""One optimizer step of train_loop (train/loop.py): the micro-batches' losses, the backward and the update,
and each step's loss read on the host, its events and the spike check. Two ways to read the loss: at once
(`step_now`: before the backward, the run's way) or one step late (`step_deferred`, debug.defer_loss_read:
train/loss_read.py), read before anything that must see it (`flush_loss`: a save, a sample, a stop, the last step)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ..protocol import emit
from . import regularize
from .config import Config
from .loss_read import LossReader, Pending, host_lr


class Diverged(Exception):
    pass


def micro_step(state, step: int, local: int, raise_oom: bool) -> Any:
    """One micro-batch's loss (with a stepper: the whole step, replayed)."""
    import torch

    cfg, group = state.cfg, state.group
    # Deterministic data order and noise per (seed, step): a resumed run sees exactly the batches
    # and noise the uninterrupted run would have. With N processes, rank r takes the micro-batch
    # one process would take as number local * N + r.
    micro = local * group.world + group.rank
    g = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + step * 97 + micro)
    batch = [state.cache[i] for i in state.sampler.draw(cfg.batch_size, g)]
    latents = torch.cat([b["latents"] for b in batch]).to(state.device)
    text, captions = regularize.batch_text(state.arch, cfg, batch, g, getattr(state.arch, "empty_text", None))
    if cfg.debug.get("log_batches"):  # test hook: the captions each micro-batch trains on
        emit({"type": "log", "level": "debug", "message": json.dumps({"step": step, "micro": micro, "captions": captions})})
    extra = {"time_ids": [t for b in batch for t in b["extra"]["time_ids"]]}
    noise_gen = torch.Generator(device=state.device).manual_seed(cfg.seed * 7919 + step * 31 + micro)
    if raise_oom:
        cfg.debug["_oom_raised"] = True
        raise torch.OutOfMemoryError("CUDA out of memory (injected by debug.raise_oom_once)")
    if state.stepper is not None:
        return state.stepper.step(latents, text, extra, noise_gen)
    return state.arch.loss(latents, text, extra, noise_gen) / cfg.gradient_accumulation


def step_now(state, step: int, inject_nan, raise_oom: bool) -> None:
    """The step with each micro-batch's loss read before its backward (a non-finite one stops the run before any
    update); with an active group (distributed.Group) the ranks agree on the mean loss and average the gradients."""
    cfg, group = state.cfg, state.group
    step_loss = 0.0
    for local in range(cfg.gradient_accumulation):
        loss = _loss(state, step, local, inject_nan, raise_oom)
        with state.timeline.loss_read():
            value = float(loss.detach().item())
        if not group.active:
            _stop_if_not_finite(step, value)
        if state.stepper is None:
            loss.backward()
        step_loss += value
    if group.active:
        group.inject_fault(cfg.debug, step)
        # every rank must agree to stop: the mean is NaN when any rank's loss is
        step_loss = group.mean(step_loss)
        _stop_if_not_finite(step, step_loss)
        group.average_gradients(state.params)
    _update(state)
    state.losses.append(step_loss)
    state.timeline.step_end()
    emit_step(state, step, step_loss, float(state.scheduler.get_last_lr()[0]))


def defers(state) -> bool:
    """debug.defer_loss_read, for one process and one micro-batch a step (train/loss_read.py)."""
    return bool(state.cfg.debug.get("defer_loss_read")) and not state.group.active and state.cfg.gradient_accumulation == 1


def step_deferred(state, step: int, inject_nan, raise_oom: bool) -> None:
    """The step with its loss copied to the host as it is computed and read after the next step's work is
    dispatched: this step's update runs whatever the loss (a non-finite one stops the run at its read, before
    any save). Reads the previous step's loss (state.pending_loss) once this step is dispatched."""
    if state.loss_reader is None:
        state.loss_reader = LossReader(state.device)
    loss = _loss(state, step, 0, inject_nan, raise_oom)
    current = state.loss_reader.put(step, loss, 0.0)  # before the next replay overwrites a graph's static loss
    if state.stepper is None:
        loss.backward()
    _update(state)
    current.lr = host_lr(state.scheduler, state.cfg.learning_rate)  # the scheduler's, once _update stepped it
    flush_loss(state)
    state.pending_loss = current


def _loss(state, step: int, local: int, inject_nan, raise_oom: bool) -> Any:
    """micro_step's loss, made NaN at debug.inject_nan_at_step."""
    loss = micro_step(state, step, local, raise_oom)
    return loss * float("nan") if inject_nan is not None and step == int(inject_nan) else loss


def _update(state) -> None:
    """After the backward: the clip and the optimizer step (a stepper's replay did both), the scheduler, the EMA."""
    import torch

    if state.stepper is None:
        torch.nn.utils.clip_grad_norm_(state.params, 1.0)
        state.optimizer.step()
    state.scheduler.step()
    if state.ema is not None:
        state.ema.update(state.params)


def _stop_if_not_finite(step: int, value: float) -> None:
    if not math.isfinite(value):
        emit({"type": "loss", "step": step, "loss": value})
        raise Diverged(f"loss is {value} at step {step}")


def flush_loss(state) -> None:
    """Reads the pending loss (step_deferred), if any: its events and the spike check, or Diverged."""
    p: Pending = state.pending_loss
    if p is None:
        return
    state.pending_loss = None
    with state.timeline.loss_read():
        value = LossReader.value(p)
    _stop_if_not_finite(p.step, value)
    state.losses.append(value)
    emit_step(state, p.step, value, p.lr)


def emit_step(state, step: int, step_loss: float, lr: float) -> None:
    """The step's loss and progress events, then the spike check. lr is always a float (a capturable
    or fused AdamW on CUDA keeps it as a tensor)."""
    cfg = state.cfg
    recent = state.losses[-50:]
    emit({"type": "loss", "step": step, "loss": step_loss, "lr": lr, "avgLoss": sum(recent) / len(recent)})
    check_spike(cfg, state.losses, step)
    elapsed = time.time() - state.started
    rate = (step - state.start_step) / elapsed if elapsed > 0 else None
    emit({"type": "progress", "task": "train", "current": step, "total": cfg.steps, "rate": rate,
          "eta": (cfg.steps - step) / rate if rate else None})


def check_spike(cfg: Config, losses: list[float], step: int) -> None:
    """Diverged when the mean loss of the last loss_spike_recent_steps steps exceeds loss_spike_factor x
    the mean of up to loss_spike_baseline_steps steps before them, once the run has loss_spike_first_step
    losses (and at least one baseline step): all four from the request."""
    factor, recent_n, baseline_n = cfg.loss_spike_factor, cfg.loss_spike_recent_steps, cfg.loss_spike_baseline_steps
    if len(losses) < cfg.loss_spike_first_step or len(losses) <= recent_n:
        return
    before = losses[-baseline_n - recent_n : -recent_n]
    average = sum(before) / len(before)
    recent = sum(losses[-recent_n:]) / recent_n
    if average > 0 and recent > factor * average:
        raise Diverged(f"loss spiked to {recent:.4g} (mean of the last {recent_n} steps), over {factor:g}x the mean of the {len(before)} steps before ({average:.4g}) at step {step}")
