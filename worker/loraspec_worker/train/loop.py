"""One training run: load and cache, add the LoRA, apply the levers, step, save (train_once), and
the optimizer steps themselves (train_loop over one TrainState)."""

from __future__ import annotations

import gc
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

from .. import checkpoint_integrity, distributed, protocol, speed
from . import metadata, readahead, regularize
from ..protocol import Cancelled, cancel_requested, emit, log, phase, soft_cancel
from . import compile_cache, samples
from .background_save import HostSnapshot, Writer
from .checkpoint import (atomic_save_safetensors, find_latest_checkpoint, load_checkpoint, lora_metadata, lora_state_dict, snapshot_checkpoint,
                         write_checkpoint)
from .config import Config
from .buckets import BucketSampler
from .model import choose_device, choose_dtype, disable_cudnn_sdpa, make_optimizer, start_cuda_context
from .timing import Timeline
from .setup import load_and_cache, prepare_trainable, report_settings, resolve_levers  # noqa: F401 - loop.load_and_cache is the trainer's path (tests)
from .steps import Diverged, defers, flush_loss, step_deferred, step_now

# Test hook: seconds to wait after each step, so an end-to-end test can watch (and stop) a run
# whose tiny model would otherwise finish 12 steps in under a second on an idle machine.
_TEST_STEP_DELAY_S = float(os.environ.get("LORASPEC_TEST_STEP_DELAY_S") or 0)

# The loss-spike rule's numbers (factor, recent window, baseline window, first step) are core's
# (knowledge/loss-spike.ts, with why they were chosen); the request carries them as failure.loss_spike_*.


@dataclass
class TrainState:
    """Everything the optimizer steps read and write (one object instead of positional arguments)."""

    cfg: Config
    arch: Any
    cache: list
    items: list
    params: list
    trainable: list
    lora_configs: dict
    optimizer: Any
    scheduler: Any
    device: Any
    group: Any
    stepper: Any = None
    ema: Any = None  # regularize.Ema when cfg.ema_decay is set
    sampler: Any = None
    start_step: int = 0
    step: int = 0
    started: float = 0.0
    losses: list = field(default_factory=list)
    checkpoints: list = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    writer: Writer = field(default_factory=Writer)  # the periodic saves' files (background_save.py)
    png_writer: Writer = field(default_factory=Writer)  # the sample PNGs (CPU only; sample_output.py), not held up by a save
    host: HostSnapshot = field(default_factory=HostSnapshot)
    loss_reader: Any = None  # loss_read.LossReader, made by the first deferred step (steps.step_deferred)
    pending_loss: Any = None  # loss_read.Pending: the last step's loss, not read yet
    final: Any = None  # (path, keys) of the final LoRA once its write started (start_final_write)

    def save(self) -> None:
        """A checkpoint of this step: the snapshot here (the training thread's stall, timed), the files
        on the writer thread; the `checkpoint` event once they are on disk."""
        step = self.step
        with self.timeline.save():
            self.writer.wait()  # at most one write in flight; its error surfaces here
            snap = snapshot_checkpoint(self.cfg, step, self.trainable, self.lora_configs, self.optimizer, self.scheduler,
                                       self.losses, self.items, self.ema, self.params, self.host)
            self.writer.submit(lambda: self._write(snap, step))

    def _write(self, snap, step: int) -> None:
        t = time.perf_counter()
        path = write_checkpoint(snap)
        took = time.perf_counter() - t
        self.timeline.save_written(took)
        self.checkpoints.append(path)
        emit({"type": "checkpoint", "step": step, "path": path, "seconds": round(took, 3)})


def finite_params(params) -> bool:
    """Every parameter finite: each tensor's largest |x| (NaN and inf propagate through it), one fused
    call per device and dtype group and one host sync in all, where a check per tensor paid a sync each
    (SDXL's attention preset: 1,120 tensors, ~50 ms at each save on a GPU)."""
    import torch

    tensors = [p.detach() for p in params]
    if not tensors:
        return True
    peaks = torch._foreach_norm(tensors, float("inf"))
    return bool(torch.isfinite(torch.stack([t.float().to(peaks[0].device) for t in peaks])).all().item())


def train_once(cfg: Config, group=None) -> dict:
    protocol.startup_mark("worker")
    reading = readahead.start(cfg.base)  # the weights come off the disk while the libraries import
    metadata.start_session()
    import torch

    protocol.startup_mark("torch")
    group = group or distributed.Group()
    context = start_cuda_context(cfg, group.local_rank)
    from diffusers.optimization import get_scheduler

    protocol.startup_mark("diffusers")
    if context is not None:
        context.join()
    device = group.device(choose_device(cfg))
    dtype = choose_dtype(cfg, device)
    if device.type == "cuda":
        disable_cudnn_sdpa()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    protocol.startup_mark("device")

    compile_cache.configure_kernels(cfg.compile_cache_dir, cfg.attention, device)  # before the levers import FA4
    levers = resolve_levers(cfg, device)
    protocol.startup_mark("levers")
    cache_file = compile_cache.configure(cfg.compile_cache_dir, compile_cache.workload_key(cfg)) if levers["compile"] else None
    protocol.startup_mark("compile_cache")
    pipe, arch, items, cache = load_and_cache(cfg, device, dtype, levers["sample_merge"])
    readahead.stop(reading)
    phase("setup", "adding the LoRA, applying the speed levers")
    params, trainable, lora_configs = prepare_trainable(cfg, pipe, arch, device, dtype, levers)
    report_settings(cfg, levers, dtype)
    if levers["cuda_graphs"]:
        optimizer = speed.make_capturable_adamw(params, cfg.learning_rate, device, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)
        stepper = speed.GraphedStep(arch, params, optimizer, max_grad_norm=1.0)
    else:
        optimizer = make_optimizer(cfg, params, device)
        stepper = None
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer=optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
    state = TrainState(cfg=cfg, arch=arch, cache=cache, items=items, params=params, trainable=trainable, lora_configs=lora_configs,
                       optimizer=optimizer, scheduler=scheduler, device=device, group=group, stepper=stepper,
                       sampler=BucketSampler([c["shape"] for c in cache]))
    if len(state.sampler) > 1:
        emit({"type": "log", "level": "info", "message": f"{len(cache)} entries in {len(state.sampler)} buckets (width x height: entries): {state.sampler.summary()}"})

    resume = cfg.resume_from
    checkpoint_integrity.remove_stale_temp_files(cfg.output_dir)
    if resume == "latest":
        resume = find_latest_checkpoint(cfg.output_dir)
        if resume is None:
            log("resume_from latest: no checkpoint yet, starting at step 0")
    saved: dict = {}
    if resume:
        state.start_step, state.losses = load_checkpoint(resume, trainable, lora_configs, optimizer, scheduler, saved)
        emit({"type": "log", "level": "info", "message": f"resumed from {resume} at step {state.start_step}"})
    state.ema = regularize.resume_ema(cfg, params, saved.get("ema"))

    phase("train", f"{cfg.steps} steps, rank {cfg.rank}, lr {cfg.learning_rate}, {device.type}")
    state.started = time.time()
    state.step = state.start_step
    with soft_cancel(), state.timeline.gc_watch(), gc_unfrozen_after():
        try:
            stopped = train_loop(state)
            state.writer.wait()  # the last checkpoint is on disk before the final save (or its write's error is raised)
        except BaseException:
            drain_writers(state)
            raise
    try:
        if levers["compile"]:
            emit({"type": "log", "level": "info", "message": compile_cache.report_message(compile_cache.report())})
        if group.is_main:
            compile_cache.save(cache_file)
        if stopped is not None:  # stopped early (debug.stop_after_step)
            return stopped
        # The last sample's PNG is encoded and written on its thread while the LoRA is saved here.
        result = save_final(state)
    finally:
        drain_writers(state)
    if "samples" in result:  # every sample is on disk (and in the result's list) before the run ends
        result["samples"] = samples.summary(state.arch.sample_renderer)
    if "path" in result:
        result["timing"] = state.timeline.summary()  # the run's end: the PNG writer included
    return result


def drain_writers(state: TrainState) -> None:
    """Both writer threads done: every sample PNG and the last checkpoint on disk, or a write's error raised."""
    try:
        state.png_writer.wait()
    finally:
        state.writer.wait()


def finite_at_end(state: TrainState) -> None:
    if not finite_params(state.params):
        raise Diverged("LoRA weights are not finite at the end of training")


def start_final_write(state: TrainState) -> None:
    """The final LoRA (rank 0, after the last step; the caller checked it finite): copied to the host, and written
    on the checkpoint writer's thread while the last samples render and the compile cache saves; save_final waits
    for the file."""
    cfg, step = state.cfg, state.step
    final = os.path.join(cfg.output_dir, f"{cfg.name}.safetensors")
    tensors = {}
    with regularize.ema_applied(state.ema, state.params):  # the saved LoRA is the EMA one (copied: CPU tensors share storage)
        for attr, module in zip(state.lora_configs, state.trainable):
            tensors.update({k: v.clone() for k, v in lora_state_dict(module, attr).items()})
    metadata = lora_metadata(cfg, state.lora_configs, step, state.items)
    state.writer.submit(lambda: atomic_save_safetensors(tensors, final, metadata))
    state.final = (final, len(tensors))


def save_final(state: TrainState) -> dict:
    import torch

    step = state.step
    if state.final is None:  # else checked before its write started
        finite_at_end(state)
    if not state.group.is_main:  # rank 0 saves; the weights are the same on every rank
        return {"steps": step, "rank": state.group.rank}
    phase("save")
    if state.final is None:  # a run that ended without its last step (resumed at the end): written here
        start_final_write(state)
    state.writer.wait()  # the file is on disk (or the write's error is raised)
    final, keys = state.final
    emit({"type": "checkpoint", "step": step, "path": final})
    elapsed = time.time() - state.started
    result = {
        "path": os.path.abspath(final),
        "steps": step,
        "startStep": state.start_step,
        "finalLoss": state.losses[-1] if state.losses else None,
        "seconds": elapsed,
        "secondsPerStep": elapsed / max(1, step - state.start_step),
        "device": state.device.type,
        "processes": state.group.world,
        "checkpoints": state.checkpoints,
        "keys": keys,
    }
    if getattr(state.arch, "sample_renderer", None) is not None:
        result["samples"] = []  # filled by train_once once the PNG writer is done
    if state.device.type == "cuda":
        result["peakMemoryGiB"] = torch.cuda.max_memory_allocated() / 2**30
    return result


# The step after which the collector settles (settle_gc): the one that captures the CUDA graph (after its eager warm-up
# steps); torch.compile compiles at the 1st step and recompiles at the 2nd (the first block's grad requirement, dynamic
# strides).
SETTLE_GC_AFTER_STEPS = max(2, speed.GRAPH_WARMUP_STEPS + 1)


def settle_gc(state: TrainState) -> None:
    """One full collection, then everything alive frozen out of later ones (gc.freeze): torch's, diffusers' and the
    compiled graphs' objects, which every later full collection would scan again (0.30-0.36 s each, 4 in FLUX.1's 400
    warm steps on an H100, 2026-12-06: bench/RESULTS.md). Nothing garbage is frozen: the collection runs first.
    debug.keep_gc leaves the collector as Python sets it (the A/B's baseline)."""
    if state.cfg.debug.get("keep_gc"):
        return
    with state.timeline.between("gc_settle"):
        gc.collect()
        gc.freeze()


@contextmanager
def gc_unfrozen_after():
    """The run's frozen objects go back to the collector when the loop ends (an in-process run: tests, the library)."""
    try:
        yield
    finally:
        gc.unfreeze()


def render_samples(state: TrainState, renderer, step: int) -> None:
    """This step's samples (PNGs written on their own thread, sample_output.py), with the LoRA that will be saved."""
    if renderer.captures_next():
        with state.timeline.between("writer_wait"):
            state.writer.wait()  # no CUDA work on the writer thread while the sample graph is captured
    with state.timeline.between("samples"), regularize.ema_applied(state.ema, state.params):
        renderer.render(step, state.png_writer)


def train_loop(state: TrainState) -> Optional[dict]:
    """The optimizer steps, from state.step to cfg.steps (each one train/steps.py's step_now, or step_deferred
    with debug.defer_loss_read), with the saves, samples, stops and cancels between them. Returns None when
    done, or a result dict when stopped early. With a stepper (speed.GraphedStep) one call does the loss,
    backward, clip and optimizer step. With an active group (distributed.Group) this rank trains its
    micro-batches and gradients are averaged."""
    cfg, group = state.cfg, state.group
    inject_nan = cfg.debug.get("inject_nan_at_step")
    raise_oom = bool(cfg.debug.get("raise_oom_once") and not cfg.debug.get("_oom_raised"))
    deferred = defers(state)
    first = getattr(state.arch, "sample_renderer", None)
    if first is not None and first.first and state.step == 0 and group.is_main:
        state.timeline.loop_begin()
        with state.timeline.between("samples"):
            first.render(0, state.png_writer)  # the strip's first column: what the base draws before any step
    while state.step < cfg.steps:
        state.timeline.step_begin()
        state.step += 1
        step = state.step
        state.optimizer.zero_grad(set_to_none=True)
        state.writer.check()  # a failed checkpoint write stops the run here
        state.png_writer.check()  # as does a failed sample PNG write
        if state.stepper is not None and state.stepper.captures_next():
            state.writer.wait()  # no CUDA work on the writer thread while the graph is captured
        renderer = getattr(state.arch, "sample_renderer", None)
        saves = bool(cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps and group.is_main)
        samples_due = renderer is not None and group.is_main and renderer.due(step)
        stop_after = cfg.debug.get("stop_after_step")
        stops = stop_after is not None and step >= int(stop_after) and step < cfg.steps
        if deferred:
            step_deferred(state, step, inject_nan, raise_oom)
            if saves or samples_due or stops or step == cfg.steps or cancel_requested():
                flush_loss(state)  # what follows sees every loss, in order
            state.timeline.step_end()
        else:
            step_now(state, step, inject_nan, raise_oom)  # its events come after step_end, as they always did
        if step - state.start_step == SETTLE_GC_AFTER_STEPS and step < cfg.steps:  # (nothing to spare after the last step)
            settle_gc(state)
        first_render = samples_due and renderer.renders == 0
        # The render that captures the sample graph goes before this step's save / final write: the capture must not
        # overlap the writer's CUDA work, and waiting for the write would stall the run for its whole length.
        captures_first = samples_due and renderer.captures_next()
        if captures_first:
            render_samples(state, renderer, step)
        if saves:
            with state.timeline.between("finite_check"):
                finite = finite_params(state.params)
            if not finite:
                raise Diverged(f"LoRA weights are not finite at step {step}")
            state.save()
        if step == cfg.steps and group.is_main:
            finite_at_end(state)
            start_final_write(state)  # written while the last samples render
        if samples_due and not captures_first:
            render_samples(state, renderer, step)
        if first_render and step < cfg.steps:  # the samples' compiled graphs or sample graph: made once, kept
            settle_gc(state)
        if _TEST_STEP_DELAY_S:
            time.sleep(_TEST_STEP_DELAY_S)
        if stops:
            # Simulates an interrupted run (tests of resume): no final file is written.
            return {"stopped": True, "steps": step, "startStep": state.start_step, "checkpoints": state.checkpoints,
                    "finalLoss": state.losses[-1] if state.losses else None}
        if group.any(cancel_requested()) and step < cfg.steps:  # every rank agrees (group.any), then the same test
            # Stopped by the user between steps: keep this step as a checkpoint so `resume_from:
            # latest` continues here, then end as cancelled. (After the last step the final LoRA is being
            # written already: the run ends as done.)
            flush_loss(state)
            if finite_params(state.params) and group.is_main:
                state.save()
            raise Cancelled("stopped at step %d" % step)
    return None
