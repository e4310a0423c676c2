"""A run's set-up before its first step: the pipeline loaded and the training data cached
(load_and_cache), the levers this device applies (resolve_levers), the LoRA added with the levers applied
(prepare_trainable), and the one settings event saying what applies (report_settings). train/loop.py
runs them in train_once."""

from __future__ import annotations

import gc

from .. import speed
from ..protocol import WorkerError, emit, phase, warning
from . import attention, lora_compute, regularize, samples, selective_ckpt
from .arches import ARCH_CLASSES
from .buckets import cache_entries
from .config import TABLE, TEXT_ENCODER_TARGETS, Config
from .data import training_items
from .model import add_lora, load_pipeline, precision_name


def load_and_cache(cfg: Config, device, dtype, sample_merge: str | None = None):
    """The pipeline on `device`, and the cached latents / caption embeddings of every item; the VAE
    and (unless the text encoder trains) the text encoders are freed afterwards. `sample_merge`: the one
    the run applies (resolve_levers; default the request's)."""
    import torch

    phase("load", f"loading {cfg.arch} base {cfg.base}")
    items = training_items(cfg)
    pipe = load_pipeline(cfg.base, cfg.arch, dtype)
    pipe.set_progress_bar_config(disable=True)
    if cfg.quantize == "fp8":
        # The denoiser reaches the GPU layer by layer in fp8 (speed.quantize_fp8_), never whole in bf16.
        denoiser_attr = ARCH_CLASSES[cfg.arch].denoiser_attr
        for name, component in pipe.components.items():
            if name != denoiser_attr and hasattr(component, "to"):
                component.to(device)
    else:
        pipe.to(device)
    arch = ARCH_CLASSES[cfg.arch](pipe, cfg, device, dtype)
    for module in [arch.denoiser, pipe.vae, *arch.text_encoders()]:
        module.requires_grad_(False)

    phase("cache", f"encoding {len(items)} images and captions")
    with torch.no_grad():
        cache = cache_entries(cfg, arch, items, lambda n, total: emit({"type": "progress", "task": "prep", "current": n, "total": total}))
        arch.empty_text = regularize.cache_empty_text(arch, cfg)  # caption dropout over cached encodings
    # Sample prompts are encoded now, while the text encoders are here; the VAE stays to decode them.
    arch.sample_renderer = samples.prepare(cfg, pipe, arch, sample_merge)
    if arch.sample_renderer is None:
        pipe.vae = None
    if not regularize.encodes_per_step(cfg):
        for attr in ("text_encoder", "text_encoder_2"):
            if hasattr(pipe, attr):
                setattr(pipe, attr, None)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return pipe, arch, items, cache


def resolve_levers(cfg: Config, device) -> dict:
    """The request's levers less what this device cannot run (coded warnings, before the load)."""
    levers = speed.refuse_levers(cfg, device, ARCH_CLASSES[cfg.arch], TABLE["refusals"])
    # fa4: refused here for the device and install; the head dim once the model is loaded (prepare_trainable)
    levers["attention"] = attention.resolve(cfg.attention, device)
    levers["sample_merge"] = applied_sample_merge(cfg, levers)
    return levers


def applied_sample_merge(cfg: Config, levers: dict) -> str:
    """The request's sample_merge, except `compiled` where the blocks are not compiled (compile refused, with its
    warning): then core's sampleMerge.compiledFallback, logged."""
    if cfg.sample_merge != "compiled" or levers["compile"] or not cfg.samples:
        return cfg.sample_merge
    fallback = TABLE["sampleMerge"]["compiledFallback"]
    emit({"type": "log", "level": "info", "message": f"sample_merge compiled renders as {fallback}: this run does not compile the blocks"})
    return fallback


def lora_compute_for(cfg: Config, dtype) -> str:
    """The request's lora_compute where the base is bf16; "fp32" over another base (the CPU's fp32, where the
    precision itself is refused with its warning), refused with its own code: bf16 LoRA compute means "in the
    base's bf16"."""
    import torch

    if cfg.lora_compute == "bf16" and dtype != torch.bfloat16:
        warning(f"lora_compute bf16 is off for this run: the base runs in {precision_name(dtype)}, the LoRA computes in fp32", code=TABLE["refusals"]["lora_compute"])
        return "fp32"
    return cfg.lora_compute


def report_settings(cfg: Config, levers: dict, dtype) -> None:
    """The one settings event, once prepare_trainable has applied the levers: the request's settings
    (core's plan) and the ones this run applies (a refusal after the load, FA4's head dim, included)."""
    emit({"type": "settings", "settings": cfg.settings(), "applied": {**cfg.settings(), **levers, "precision": precision_name(dtype)}})


def prepare_trainable(cfg: Config, pipe, arch, device, dtype, levers: dict) -> tuple[list, list, dict]:
    """Adds the LoRA adapters, applies the speed levers; returns (params, trainable, lora_configs)."""
    denoiser = arch.denoiser
    lora_configs = {arch.denoiser_attr: add_lora(denoiser, cfg, cfg.targets)}
    trainable = [denoiser]
    if cfg.train_text_encoder:
        if cfg.arch != "sdxl":
            raise WorkerError("E_NOT_SUPPORTED", "train_text_encoder is only supported for sdxl in the built-in trainer")
        for attr, encoder in (("text_encoder", pipe.text_encoder), ("text_encoder_2", pipe.text_encoder_2)):
            lora_configs[attr] = add_lora(encoder, cfg, TEXT_ENCODER_TARGETS)
            trainable.append(encoder)
    if cfg.quantize == "fp8" or levers["fp8_matmul"]:
        matmul = levers["fp8_matmul"]
        counts = speed.quantize_fp8_(denoiser, device, dtype, matmul=matmul, fp8_base=cfg.quantize == "fp8")
        held = "held in float8 e4m3 with per-row scales" if cfg.quantize == "fp8" else "as float8 e4m3 copies"
        detail = "; fp8 GEMMs for the forward" + ("" if cfg.quantize == "fp8" else " and the input gradient") if matmul else ""
        emit({"type": "log", "level": "info", "message": f"fp8 base: {counts['layers']} linears ({counts['params'] / 1e9:.2f}B weights) {held}{detail}"})
    levers["attention"] = attention.activate(levers["attention"], denoiser, device)
    if levers["channels_last"]:
        speed.use_channels_last(denoiser)
    params = []
    for module in trainable:
        for p in module.parameters():
            if p.requires_grad:
                p.data = p.data.float()  # fp32 LoRA parameters over a bf16/fp32 base
                params.append(p)
    levers["lora_compute"] = lora_compute_for(cfg, dtype)
    n = sum(lora_compute.apply(module, levers["lora_compute"]) for module in trainable)
    if n:
        emit({"type": "log", "level": "info", "message": f"LoRA compute in bf16 on {n} LoRA linears (fp32 master weights; DoRA/LoKr/LoHa and conv LoRA keep fp32)"})
    if cfg.gradient_checkpointing and cfg.checkpointing_mode == "selective":
        n = selective_ckpt.apply(denoiser, keep=selective_ckpt.PRODUCT_KEEP)
        emit({"type": "log", "level": "info", "message": f"selective checkpointing on {n} blocks: the {selective_ckpt.PRODUCT_KEEP} outputs kept, everything else recomputed"})
    elif cfg.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    if levers["compile"]:
        n = speed.compile_blocks(denoiser)
        emit({"type": "log", "level": "info", "message": f"compiling {n} repeated blocks (the first steps are slow while torch.compile works)"})
    denoiser.train()
    return params, trainable, lora_configs
