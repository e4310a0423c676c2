"""Regularisers and schedules (issue 21): caption dropout and tag shuffling (per sample, seeded by
the step's data generator), noise offset and min-SNR weighting (SDXL), flow-model timestep
sampling, and an EMA of the LoRA weights. Core decides every value (compile/regularisers.ts); the
constants come from core's table (knowledge/regularisers.ts -> schema/builtin-trainer.json).

What varies per step is drawn from the generators the loop hands in: the data generator (captions)
outside the loss, the noise generator inside `draw` (noise offset), so the CUDA-graph split
(draw / loss_from) keeps working; min-SNR weights are plain tensor maths on the drawn timesteps."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Optional

from ..schema_files import builtin_trainer

REG = builtin_trainer()["regularisers"]


# ---------------------------------------------------------------------------------------------
# captions

def encodes_per_step(cfg) -> bool:
    """Captions are encoded each step (text encoders kept) when they train or when tags shuffle."""
    return bool(cfg.train_text_encoder or cfg.shuffle_tags)


def dropped(cfg, n: int, generator) -> list[bool]:
    """Which of the n samples train on the empty caption (no draw at rate 0: runs without dropout
    keep their exact data order)."""
    import torch

    if not cfg.caption_dropout:
        return [False] * n
    return (torch.rand((n,), generator=generator) < cfg.caption_dropout).tolist()


def shuffle_tags(caption: str, trigger: Optional[str], generator) -> str:
    """The caption's comma-separated tags in a seeded random order; the first tag holding the
    trigger stays first (Kohya --shuffle_caption --keep_tokens 1 on a trigger-first caption)."""
    import torch

    sep = REG["tagSeparator"]
    tags = [t.strip() for t in caption.split(sep) if t.strip()]
    keep = next((i for i, t in enumerate(tags) if trigger and trigger in t.split()), None)
    head = [tags.pop(keep)] if keep is not None else []
    order = torch.randperm(len(tags), generator=generator).tolist() if len(tags) > 1 else list(range(len(tags)))
    return f"{sep} ".join(head + [tags[i] for i in order])


def batch_captions(cfg, batch: list[dict], generator) -> list[str]:
    """The captions this step trains on ("" where dropped, shuffled when asked)."""
    drop = dropped(cfg, len(batch), generator)
    out = []
    for b, d in zip(batch, drop):
        if d:
            out.append("")
        elif cfg.shuffle_tags:
            out.append(shuffle_tags(b["caption"], cfg.trigger_word if cfg.prefix_trigger else None, generator))
        else:
            out.append(b["caption"])
    return out


def batch_text(arch, cfg, batch: list[dict], generator, empty_text: Optional[dict]) -> tuple[dict, list[str]]:
    """The step's text conditioning and the captions it stands for: encoded now (per-step
    encoding), or the cached encodings with the empty caption's swapped in where dropped."""
    captions = batch_captions(cfg, batch, generator)
    if encodes_per_step(cfg):
        return arch.encode_text(captions), captions
    texts = [empty_text if c == "" and b["caption"] != "" else b["text"] for b, c in zip(batch, captions)]
    return arch.collate_text(texts), captions


def cache_empty_text(arch, cfg) -> Optional[dict]:
    """The empty caption's encoding, cached beside the others when dropout needs it."""
    if not cfg.caption_dropout or encodes_per_step(cfg):
        return None
    text = arch.encode_text([""])
    return {k: [e.detach() for e in v] if isinstance(v, list) else v.detach() for k, v in text.items()}


# ---------------------------------------------------------------------------------------------
# noise and loss (SDXL)

def offset_noise(noise, cfg, generator):
    """noise + noise_offset x N(0,1) per image and channel (diffusers' train_dreambooth_lora_sdxl.py
    and Kohya's --noise_offset): shifts each channel's mean, so the model learns overall brightness."""
    import torch

    if not cfg.noise_offset:
        return noise
    b, c = noise.shape[:2]
    shift = torch.randn((b, c) + (1,) * (noise.dim() - 2), generator=generator, device=noise.device, dtype=noise.dtype)
    return noise + cfg.noise_offset * shift


def snr(alphas_cumprod, timesteps):
    """SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (diffusers training_utils.compute_snr)."""
    a = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return a / (1.0 - a)


def min_snr_weights(alphas_cumprod, timesteps, gamma: float, v_prediction: bool):
    """min(SNR, gamma) / SNR for epsilon targets, min(SNR, gamma) / (SNR + 1) for v targets
    (Min-SNR, arXiv 2303.09556; Kohya apply_snr_weight, diffusers --snr_gamma)."""
    import torch

    s = snr(alphas_cumprod, timesteps)
    clipped = torch.clamp(s, max=gamma)
    return clipped / (s + 1.0) if v_prediction else clipped / s


def weighted_mse(pred, target, cfg, alphas_cumprod=None, timesteps=None, v_prediction: bool = False):
    """The mean squared error; with min_snr_gamma each sample's mean is weighted first."""
    import torch.nn.functional as F

    if cfg.min_snr_gamma is None:
        return F.mse_loss(pred.float(), target.float(), reduction="mean")
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=tuple(range(1, pred.dim())))
    return (per_sample * min_snr_weights(alphas_cumprod, timesteps, cfg.min_snr_gamma, v_prediction)).mean()


# ---------------------------------------------------------------------------------------------
# flow-model timestep sampling

def shift_mu(tokens: int) -> float:
    """mu of the resolution-dependent shift: linear in the image's token count (FLUX's schedule)."""
    s = REG["shift"]
    m = (s["maxShift"] - s["baseShift"]) / (s["maxSeqLen"] - s["baseSeqLen"])
    return tokens * m + (s["baseShift"] - m * s["baseSeqLen"])


def time_shift(mu: float, t):
    """sigma' = e^mu / (e^mu + 1/t - 1) (sd-scripts flux_train_utils.time_shift with sigma 1)."""
    return math.exp(mu) / (math.exp(mu) + (1.0 / t - 1.0))


def flow_sigmas(method: str, scheduler, b: int, generator, device, tokens: int):
    """(sigmas, timesteps) of b samples. uniform / sigmoid / logit_normal draw u in (0, 1) and read
    the scheduler's sigma table there (diffusers' compute_density_for_timestep_sampling + index, as
    the dreambooth scripts do); shift draws sigmoid(N(0,1)) and shifts it by the token count
    (Kohya's flux_shift, continuous)."""
    import torch

    n = scheduler.config.num_train_timesteps
    if method == "shift":
        t = torch.sigmoid(REG["sigmoidScale"] * torch.randn((b,), generator=generator, device=device))
        sigmas = time_shift(shift_mu(tokens), t.clamp(1e-6, 1 - 1e-6))
        return sigmas.float(), (sigmas * n).float()
    if method == "uniform":
        u = torch.rand((b,), generator=generator, device=device)
    elif method == "sigmoid":
        u = torch.sigmoid(REG["sigmoidScale"] * torch.randn((b,), generator=generator, device=device))
    elif method == "logit_normal":
        u = torch.sigmoid(REG["logitMean"] + REG["logitStd"] * torch.randn((b,), generator=generator, device=device))
    else:  # the request schema allows only the four
        raise ValueError(f"unknown timestep_sampling {method!r}")
    indices = (u * n).long().clamp(0, n - 1)
    sigmas = scheduler.sigmas.to(device)[indices]
    timesteps = scheduler.timesteps.to(device)[indices]
    return sigmas.float(), timesteps.float()


# ---------------------------------------------------------------------------------------------
# EMA of the LoRA weights

class Ema:
    """shadow <- decay x shadow + (1 - decay) x param after every optimizer step (ai-toolkit's
    ema_config). The saved LoRA (final and checkpoints) is the shadow; a checkpoint also keeps the
    raw weights so a resumed run trains on from them with the shadow restored."""

    def __init__(self, params: list, decay: float):
        self.decay = decay
        self.shadow = [p.detach().clone() for p in params]

    def update(self, params: list) -> None:
        import torch

        with torch.no_grad():
            torch._foreach_lerp_(self.shadow, [p.detach() for p in params], 1.0 - self.decay)

    @contextlib.contextmanager
    def applied(self, params: list):
        """The shadow in the parameters for the duration (a save), the raw weights back after."""
        import torch

        raw = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(params, raw):
                    p.copy_(r)

    def state(self, params: list) -> dict:
        """What a checkpoint keeps beside its (EMA) LoRA file: the decay and the raw weights (the live
        tensors: the checkpoint's snapshot copies them)."""
        return {"decay": self.decay, "raw": [p.detach() for p in params]}

    def restore(self, params: list, state: dict) -> None:
        """After a checkpoint's (EMA) LoRA file was loaded into params: that is the shadow; the
        raw weights go back into params."""
        import torch

        with torch.no_grad():
            self.shadow = [p.detach().clone() for p in params]
            for p, r in zip(params, state["raw"]):
                p.copy_(r.to(p.device, p.dtype))


def resume_ema(cfg, params: list, saved: Optional[dict]) -> Optional[Ema]:
    """The run's EMA (None when cfg.ema_decay is off). `saved` is a resumed checkpoint's EMA state:
    its LoRA file (now in params) is the shadow, and the raw weights go back into params, also
    when this run no longer keeps an EMA."""
    ema = Ema(params, cfg.ema_decay) if cfg.ema_decay else None
    if saved is not None:
        (ema or Ema(params, saved["decay"])).restore(params, saved)
    return ema


def kohya_metadata(cfg) -> dict:
    """The regularisers as the `ss_*` keys sd-scripts writes (lora-formats.md: ss_noise_offset,
    ss_min_snr_gamma, ss_caption_dropout_rate, ss_shuffle_caption, ss_timestep_sampling)."""
    meta = {
        "ss_noise_offset": str(cfg.noise_offset) if cfg.noise_offset else "None",
        "ss_min_snr_gamma": str(cfg.min_snr_gamma) if cfg.min_snr_gamma is not None else "None",
        "ss_caption_dropout_rate": str(cfg.caption_dropout),
        "ss_shuffle_caption": str(bool(cfg.shuffle_tags)),
    }
    if cfg.arch in REG["flowArches"]:
        meta["ss_timestep_sampling"] = cfg.timestep_sampling
    if cfg.ema_decay:
        meta["loraspec.ema_decay"] = str(cfg.ema_decay)
    return meta


def ema_applied(ema: Optional[Ema], params: list) -> Any:
    return ema.applied(params) if ema is not None else contextlib.nullcontext()
