"""`train`: the built-in LoRA trainer (diffusers + peft) for SDXL, FLUX.1 and FLUX.2 [klein].

Request (JSON; see packages/core/src/compile/diffusers.ts, which writes it from a contract):
  base            HF id, local diffusers folder, or single .safetensors file
  arch            sdxl | flux1 | flux2-klein (flux2-dev | qwen-image | zimage: E_NOT_SUPPORTED for now)
  dataset         folder of images with same-name .txt captions
  output_dir      where checkpoints/ and the final LoRA go; name: the file stem (default "lora")
  resolution, rank, alpha, learning_rate, steps, batch_size, gradient_accumulation, optimizer,
  lr_scheduler, warmup_steps, precision, gradient_checkpointing, save_every, seed, trigger_word,
  prefix_trigger (default true: a caption without the trigger gets it in front; false trains the
  captions as written), reg_dataset (regularisation / prior-preservation images: a folder like
  dataset whose captions are never given the trigger; Kohya's reg_data_dir, ai-toolkit's is_reg),
  contract_hash, resume_from (a checkpoint folder or "latest"), train_text_encoder (SDXL),
  guidance_scale (FLUX.1 guidance embedding), failure {loss_spike_factor, on_oom, oom_fallbacks},
  debug {inject_nan_at_step, raise_oom_once}

The math follows diffusers' dreambooth LoRA scripts (trainers.md §5.5): SDXL predicts the DDPM noise
(or v) at a uniform timestep; FLUX trains the flow-matching velocity (noise - latents) at
sigma from the chosen timestep density, on packed latents.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from . import checkpoint_integrity, distributed, speed
from .protocol import Cancelled, WorkerError, cancel_requested, emit, is_oom, log, phase, require, soft_cancel, warning

# Test hook: seconds to wait after each step, so an end-to-end test can watch (and stop) a run
# whose tiny model would otherwise finish 12 steps in under a second on an idle machine.
_TEST_STEP_DELAY_S = float(os.environ.get("LORASPEC_TEST_STEP_DELAY_S") or 0)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SUPPORTED_ARCHES = ("sdxl", "flux1", "flux2-klein", "zimage", "qwen-image")
NOT_YET_ARCHES = ("flux2-dev", "sd35")
NOT_YET_WHY = {
    # diffusers 0.42 has Flux2Pipeline, but its Mistral-3 prompt processor (PixtralProcessor) needs
    # torchvision, which the worker does not pin, and no tiny test base can be built without it.
    "flux2-dev": "its Mistral-3 text processor needs torchvision, which the worker does not install",
    "sd35": "no SD3.5 loss code yet",
}

# Target modules per architecture (trainers.md §5.5, lora-formats.md §2a/§2b): attention
# projections, like diffusers' dreambooth LoRA scripts.
TARGETS = {
    "sdxl": ["to_q", "to_k", "to_v", "to_out.0"],
    "flux1": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
    "flux2-klein": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out", "to_qkv_mlp_proj"],
    "zimage": ["to_q", "to_k", "to_v", "to_out.0"],
    "qwen-image": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
}
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]

# Spike detection: compare the recent mean loss with the median of the window before it; diffusion
# losses swing with the sampled timestep, so single steps are never judged alone.
SPIKE_WINDOW = 20
SPIKE_RECENT = 5
SPIKE_MIN_STEPS = 10
# Resumable checkpoints kept (each holds the optimizer state, about twice the LoRA's size).
KEEP_STATES = 2


@dataclass
class Config:
    base: str
    arch: str
    dataset: str
    output_dir: str
    name: str = "lora"
    resolution: int = 1024
    rank: int = 16
    alpha: float = 16
    learning_rate: float = 1e-4
    steps: int = 1000
    batch_size: int = 1
    gradient_accumulation: int = 1
    optimizer: str = "adamw"
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    precision: str = "bf16"
    gradient_checkpointing: bool = False
    save_every: int = 0
    seed: int = 42
    trigger_word: Optional[str] = None
    prefix_trigger: bool = True
    reg_dataset: Optional[str] = None
    caption_extension: str = ".txt"
    contract_hash: Optional[str] = None
    resume_from: Optional[str] = None
    train_text_encoder: bool = False
    guidance_scale: float = 1.0
    weighting_scheme: str = "none"
    max_sequence_length: int = 512
    device: Optional[str] = None
    loss_spike_factor: Optional[float] = None
    on_oom: str = "fail"
    oom_fallbacks: list = field(default_factory=list)
    # Data-parallel processes on one host (one per GPU; distributed.py).
    num_processes: int = 1
    # Speed levers (speed.py, bench/gpu-speed.py). None = chosen by speed.choose_levers.
    compile: Optional[bool] = None
    cuda_graphs: Optional[bool] = None
    # fp8 GEMMs for the frozen base's block linears (speed.Fp8Linear matmul; needs float8 tensor cores).
    fp8_matmul: Optional[bool] = None
    # "fp8": the frozen base's block linears held in float8 (the 24 GB recipe for FLUX.1).
    quantize: str = "none"
    debug: dict = field(default_factory=dict)


def parse_config(request: dict) -> Config:
    arch = require(request, "arch", str)
    if arch in NOT_YET_ARCHES:
        raise WorkerError(
            "E_NOT_SUPPORTED",
            f"the built-in trainer does not train '{arch}' yet" + (f": {NOT_YET_WHY[arch]}" if arch in NOT_YET_WHY else ""),
            hint="use trainer ai-toolkit or fal for this model, or one of: " + ", ".join(SUPPORTED_ARCHES),
        )
    if arch not in SUPPORTED_ARCHES:
        raise WorkerError("E_USAGE", f"unknown arch '{arch}'", hint="one of: " + ", ".join(SUPPORTED_ARCHES))
    failure = request.get("failure") or {}
    known = set(Config.__dataclass_fields__)
    values = {k: v for k, v in request.items() if k in known and v is not None}
    values["base"] = require(request, "base", str)
    values["dataset"] = require(request, "dataset", str)
    values["output_dir"] = require(request, "output_dir", str)
    if "loss_spike_factor" in failure:
        values["loss_spike_factor"] = failure["loss_spike_factor"]
    if "on_oom" in failure:
        values["on_oom"] = failure["on_oom"]
    if "oom_fallbacks" in failure:
        values["oom_fallbacks"] = list(failure["oom_fallbacks"])
    cfg = Config(**values)
    for name in ("steps", "rank", "batch_size", "gradient_accumulation", "resolution", "num_processes"):
        if int(getattr(cfg, name)) < 1:
            raise WorkerError("E_USAGE", f"'{name}' must be at least 1")
    if cfg.quantize not in ("none", "fp8"):
        raise WorkerError("E_NOT_SUPPORTED", f"the built-in trainer holds the base in bf16 or fp8, not '{cfg.quantize}'",
                          hint="quantize: fp8 (or none); nf4/int8 need ai-toolkit")
    if cfg.resolution % 16:
        raise WorkerError("E_USAGE", f"resolution {cfg.resolution} must be a multiple of 16")
    return cfg


# ---------------------------------------------------------------------------------------------
# dataset


def read_dataset(folder: str, trigger: Optional[str], caption_extension: str = ".txt") -> list[tuple[str, str]]:
    if not os.path.isdir(folder):
        raise WorkerError("E_DATASET_NOT_FOUND", f"dataset folder not found: {folder}")
    items = []
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        caption_path = os.path.join(folder, stem + caption_extension)
        caption = ""
        if os.path.exists(caption_path):
            with open(caption_path, encoding="utf-8") as f:
                caption = f.read().strip()
        else:
            warning(f"no caption for {name}; training it on the trigger word alone", code="W_CAPTION_MISSING")
        if trigger and trigger not in caption:
            caption = f"{trigger}, {caption}" if caption else trigger
        items.append((os.path.join(folder, name), caption))
    if not items:
        raise WorkerError("E_DATASET_EMPTY", f"no images in {folder}", hint=f"add .png/.jpg/.webp files with {caption_extension} captions")
    return items


def training_items(cfg: Config) -> list[tuple[str, str]]:
    """The dataset (trigger in front unless prefix_trigger is off) and the reg images (as written)."""
    items = read_dataset(cfg.dataset, cfg.trigger_word if cfg.prefix_trigger else None, cfg.caption_extension)
    if cfg.reg_dataset:
        items += read_dataset(cfg.reg_dataset, None, cfg.caption_extension)
    return items


def load_image(path: str, resolution: int):
    """Resize the short side to `resolution`, center-crop a square, scale to [-1, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        image = Image.open(path)
        image.load()
    except Exception as e:  # noqa: BLE001
        raise WorkerError("E_IMAGE_UNREADABLE", f"cannot read {path}: {e}") from None
    image = image.convert("RGB")
    w, h = image.size
    scale = resolution / min(w, h)
    image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1), (h, w), (top, left)


# ---------------------------------------------------------------------------------------------
# model loading


def pipeline_class(arch: str):
    import diffusers

    return {
        "sdxl": diffusers.StableDiffusionXLPipeline,
        "flux1": diffusers.FluxPipeline,
        "flux2-klein": diffusers.Flux2KleinPipeline,
        "zimage": diffusers.ZImagePipeline,
        "qwen-image": diffusers.QwenImagePipeline,
    }[arch]


def load_pipeline(base: str, arch: str, dtype):
    """A HF id, a local diffusers folder, or a single checkpoint file: loaded for real."""
    cls = pipeline_class(arch)
    looks_like_path = base.startswith((".", "/", "~")) or os.sep + os.sep in base or base.count("/") > 1 or "\\" in base
    if looks_like_path and not os.path.exists(base):
        raise WorkerError("E_FILE_NOT_FOUND", f"base model not found: {base}", hint="point base at a diffusers folder, a .safetensors file, or a Hugging Face id like org/name")
    try:
        if os.path.isfile(base):
            if not hasattr(cls, "from_single_file"):
                raise WorkerError("E_NOT_SUPPORTED", f"{arch} cannot load a single-file checkpoint yet", hint="point base at a diffusers folder or a HF id")
            return cls.from_single_file(base, torch_dtype=dtype)
        if os.path.isdir(base) and not os.path.exists(os.path.join(base, "model_index.json")):
            raise WorkerError("E_FILE_NOT_FOUND", f"{base} is not a diffusers model folder (no model_index.json)")
        return cls.from_pretrained(base, torch_dtype=dtype)
    except WorkerError:
        raise
    except OSError as e:
        raise WorkerError(
            "E_FILE_NOT_FOUND",
            f"cannot load base model '{base}': {str(e).splitlines()[0]}",
            hint="check the path or HF id; gated models need `huggingface-cli login`; offline runs need the model in the HF cache",
        ) from None


def disable_cudnn_sdpa() -> None:
    """cuDNN's SDPA backend gave NaN gradients on FLUX attention shapes (tiny FLUX.1 and FLUX.2
    [klein] on an H200, torch 2.11+cu130: loss NaN at step 2; the flash/efficient kernels are
    fine), so training and sampling use the other backends."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def choose_device(cfg: Config):
    import torch

    if cfg.device:
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def choose_dtype(cfg: Config, device):
    import torch

    wanted = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(cfg.precision)
    if wanted is None:
        raise WorkerError("E_USAGE", f"unknown precision '{cfg.precision}'", hint="bf16, fp16 or fp32")
    if device.type == "cpu" and wanted is not torch.float32:
        # Half-precision matmuls on CPU are slow and some kernels are missing; the frozen base runs
        # in fp32 there. The LoRA parameters are fp32 everywhere.
        log(f"precision {cfg.precision} requested on CPU; using fp32 for the base")
        return torch.float32
    return wanted


# ---------------------------------------------------------------------------------------------
# per-architecture pieces: encode captions, encode images, one training loss


class Arch:
    name = ""
    denoiser_attr = "transformer"

    def __init__(self, pipe, cfg: Config, device, dtype):
        self.pipe = pipe
        self.cfg = cfg
        self.device = device
        self.dtype = dtype
        # kept before the VAE is freed
        self.vae_scale = getattr(pipe, "vae_scale_factor", None) or 2 ** (len(pipe.vae.config.block_out_channels) - 1)

    @property
    def denoiser(self):
        return getattr(self.pipe, self.denoiser_attr)

    def encode_text(self, captions: list[str]) -> dict:
        raise NotImplementedError

    def encode_images(self, pixels) -> Any:
        raise NotImplementedError

    def loss(self, latents, text: dict, extra: dict, generator) -> Any:
        raise NotImplementedError

    def text_encoders(self) -> list:
        return []

    def collate_text(self, texts: list[dict]) -> dict:
        """Cached per-caption encodings -> one batch: per-sample tensors are concatenated;
        shared position ids (2-D text_ids) are taken from the first."""
        import torch

        first = texts[0]
        return {k: torch.cat([t[k] for t in texts]) if first[k].dim() > 2 or k == "pooled" else first[k] for k in first}


class SDXL(Arch):
    name = "sdxl"
    denoiser_attr = "unet"

    def __init__(self, pipe, cfg, device, dtype):
        super().__init__(pipe, cfg, device, dtype)
        from diffusers import DDPMScheduler

        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    def text_encoders(self):
        return [self.pipe.text_encoder, self.pipe.text_encoder_2]

    def encode_text(self, captions):
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompt=captions, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return {"embeds": embeds, "pooled": pooled}

    def encode_images(self, pixels):
        import torch

        vae = self.pipe.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mode()
        return latents.float() * vae.config.scaling_factor

    def draw(self, latents, generator) -> dict:
        """The step's random inputs, drawn apart from the loss so a CUDA graph can replay the loss
        with fresh draws copied in (speed.GraphedStep)."""
        import torch

        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (b,), generator=generator, device=latents.device).long()
        return {"noise": noise, "timesteps": timesteps}

    def static_extra(self, extra, device) -> dict:
        """`extra` as device tensors (no host-to-device copy inside a captured graph)."""
        import torch

        return {"time_ids": torch.tensor(extra["time_ids"], device=device, dtype=self.dtype)}

    def loss(self, latents, text, extra, generator):
        return self.loss_from(latents, text, extra, self.draw(latents, generator))

    def loss_from(self, latents, text, extra, draws):
        import torch
        import torch.nn.functional as F

        noise, timesteps = draws["noise"], draws["timesteps"]
        self.noise_scheduler.alphas_cumprod = self.noise_scheduler.alphas_cumprod.to(latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        # SDXL micro-conditioning: original size, crop top-left, target size (all in pixels).
        add_time_ids = extra["time_ids"]
        if not torch.is_tensor(add_time_ids):
            add_time_ids = torch.tensor(add_time_ids, device=latents.device, dtype=self.dtype)
        pred = self.denoiser(
            noisy.to(self.dtype),
            timesteps,
            encoder_hidden_states=text["embeds"].to(self.dtype),
            added_cond_kwargs={"text_embeds": text["pooled"].to(self.dtype), "time_ids": add_time_ids},
            return_dict=False,
        )[0]
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return F.mse_loss(pred.float(), target.float(), reduction="mean")


class FlowArch(Arch):
    """Shared flow-matching loss for FLUX.1 and FLUX.2: x_t = (1 - s) x0 + s noise, target noise - x0."""

    def __init__(self, pipe, cfg, device, dtype):
        super().__init__(pipe, cfg, device, dtype)
        import copy

        self.noise_scheduler = copy.deepcopy(pipe.scheduler)

    def sample_sigmas(self, b, generator, device):
        import torch

        n = self.noise_scheduler.config.num_train_timesteps
        if self.cfg.weighting_scheme == "logit_normal":
            u = torch.sigmoid(torch.randn((b,), generator=generator, device=device))
        else:
            u = torch.rand((b,), generator=generator, device=device)
        indices = (u * n).long().clamp(0, n - 1)
        sigmas = self.noise_scheduler.sigmas.to(device)[indices]
        timesteps = self.noise_scheduler.timesteps.to(device)[indices]
        return sigmas.float(), timesteps.float()


class Flux1(FlowArch):
    name = "flux1"

    def text_encoders(self):
        return [self.pipe.text_encoder, self.pipe.text_encoder_2]

    def encode_text(self, captions):
        embeds, pooled, text_ids = self.pipe.encode_prompt(
            prompt=captions, prompt_2=None, device=self.device, max_sequence_length=self.cfg.max_sequence_length
        )
        return {"embeds": embeds, "pooled": pooled, "text_ids": text_ids}

    def encode_images(self, pixels):
        import torch

        vae = self.pipe.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mode()
        return ((latents.float() - vae.config.shift_factor) * vae.config.scaling_factor)

    def loss(self, latents, text, extra, generator):
        import torch
        import torch.nn.functional as F
        from diffusers import FluxPipeline

        b, c, h, w = latents.shape
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        sigmas, timesteps = self.sample_sigmas(b, generator, latents.device)
        s = sigmas.view(b, 1, 1, 1)
        noisy = (1.0 - s) * latents + s * noise
        packed = FluxPipeline._pack_latents(noisy, b, c, h, w)
        img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, latents.device, self.dtype)
        guidance = None
        if self.denoiser.config.guidance_embeds:
            guidance = torch.full((b,), float(self.cfg.guidance_scale), device=latents.device)
        pred = self.denoiser(
            hidden_states=packed.to(self.dtype),
            timestep=timesteps / 1000.0,
            guidance=guidance,
            pooled_projections=text["pooled"].to(self.dtype),
            encoder_hidden_states=text["embeds"].to(self.dtype),
            txt_ids=text["text_ids"].to(self.dtype),
            img_ids=img_ids,
            return_dict=False,
        )[0]
        s_ = self.vae_scale
        pred = FluxPipeline._unpack_latents(pred, height=h * s_, width=w * s_, vae_scale_factor=s_)
        target = noise - latents
        return F.mse_loss(pred.float(), target.float(), reduction="mean")


class Flux2Klein(FlowArch):
    name = "flux2-klein"

    def text_encoders(self):
        return [self.pipe.text_encoder]

    def encode_text(self, captions):
        kwargs = {}
        n_layers = self.pipe.text_encoder.config.num_hidden_layers
        if n_layers < 28:  # tiny encoders: read evenly spaced layers instead of the default (9, 18, 27)
            kwargs["text_encoder_out_layers"] = tuple(max(1, round(n_layers * k / 3)) for k in (1, 2, 3))
        embeds, text_ids = self.pipe.encode_prompt(
            prompt=captions, device=self.device, max_sequence_length=self.cfg.max_sequence_length, **kwargs
        )
        return {"embeds": embeds, "text_ids": text_ids}

    def encode_images(self, pixels):
        import torch
        from diffusers import Flux2KleinPipeline

        vae = self.pipe.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mode()
            latents = Flux2KleinPipeline._patchify_latents(latents.float())
            mean = vae.bn.running_mean.view(1, -1, 1, 1).to(latents.device, latents.dtype)
            std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(latents.device, latents.dtype)
        return (latents - mean) / std

    def loss(self, latents, text, extra, generator):
        import torch
        import torch.nn.functional as F
        from diffusers import Flux2KleinPipeline

        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        sigmas, timesteps = self.sample_sigmas(b, generator, latents.device)
        s = sigmas.view(b, 1, 1, 1)
        noisy = (1.0 - s) * latents + s * noise
        img_ids = Flux2KleinPipeline._prepare_latent_ids(noisy).to(latents.device)
        packed = Flux2KleinPipeline._pack_latents(noisy)
        pred = self.denoiser(
            hidden_states=packed.to(self.dtype),
            timestep=timesteps / 1000.0,
            guidance=None,
            encoder_hidden_states=text["embeds"].to(self.dtype),
            txt_ids=text["text_ids"],
            img_ids=img_ids,
            return_dict=False,
        )[0]
        pred = pred[:, : packed.shape[1]]
        target = Flux2KleinPipeline._pack_latents(noise - latents)
        return F.mse_loss(pred.float(), target.float(), reduction="mean")


class ZImage(FlowArch):
    """Z-Image: the transformer takes lists (one latent (C, 1, H, W) and one unpadded caption
    embedding per sample), its timestep input is 1 - sigma, and it predicts x0 - noise (the
    pipeline negates its output into the scheduler's velocity)."""

    name = "zimage"

    def text_encoders(self):
        return [self.pipe.text_encoder]

    def encode_text(self, captions):
        embeds, _ = self.pipe.encode_prompt(
            prompt=list(captions), device=self.device, do_classifier_free_guidance=False, max_sequence_length=self.cfg.max_sequence_length
        )
        return {"embeds": list(embeds)}

    def collate_text(self, texts):
        return {"embeds": [e for t in texts for e in t["embeds"]]}

    def encode_images(self, pixels):
        import torch

        vae = self.pipe.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mode()
        return (latents.float() - vae.config.shift_factor) * vae.config.scaling_factor

    def loss(self, latents, text, extra, generator):
        import torch
        import torch.nn.functional as F

        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        sigmas, _ = self.sample_sigmas(b, generator, latents.device)
        s = sigmas.view(b, 1, 1, 1)
        noisy = (1.0 - s) * latents + s * noise
        x = list(noisy.to(self.dtype).unsqueeze(2).unbind(dim=0))
        out = self.denoiser(x, (1.0 - sigmas).to(self.dtype), [e.to(self.dtype) for e in text["embeds"]], return_dict=False)[0]
        pred = torch.stack([o.float() for o in out], dim=0).squeeze(2)
        target = latents - noise
        return F.mse_loss(pred, target.float(), reduction="mean")


class QwenImage(FlowArch):
    """Qwen-Image: a 3-D (video) VAE normalised by per-channel latents_mean/std, 2x2 packed
    latents, caption embeddings with a padding mask, velocity (noise - x0) at timestep sigma."""

    name = "qwen-image"

    def text_encoders(self):
        return [self.pipe.text_encoder]

    def encode_text(self, captions):
        embeds, mask = self.pipe.encode_prompt(prompt=list(captions), device=self.device, max_sequence_length=self.cfg.max_sequence_length)
        return {"embeds": embeds, "mask": mask if mask is not None else self._ones(embeds)}

    @staticmethod
    def _ones(embeds):
        import torch

        return torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)

    def collate_text(self, texts):
        import torch

        longest = max(t["embeds"].shape[1] for t in texts)
        embeds, masks = [], []
        for t in texts:
            pad = longest - t["embeds"].shape[1]
            embeds.append(torch.nn.functional.pad(t["embeds"], (0, 0, 0, pad)))
            masks.append(torch.nn.functional.pad(t["mask"], (0, pad)))
        return {"embeds": torch.cat(embeds), "mask": torch.cat(masks)}

    def encode_images(self, pixels):
        import torch

        vae = self.pipe.vae
        with torch.no_grad():
            latents = vae.encode(pixels.unsqueeze(2).to(self.device, vae.dtype)).latent_dist.mode().float()
            z = vae.config.z_dim
            mean = torch.tensor(vae.config.latents_mean, device=latents.device).view(1, z, 1, 1, 1)
            std = torch.tensor(vae.config.latents_std, device=latents.device).view(1, z, 1, 1, 1)
        return ((latents - mean) / std)[:, :, 0]  # one frame: (B, z, H, W)

    def loss(self, latents, text, extra, generator):
        import torch
        import torch.nn.functional as F
        from diffusers import QwenImagePipeline

        b, c, h, w = latents.shape
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        sigmas, timesteps = self.sample_sigmas(b, generator, latents.device)
        s = sigmas.view(b, 1, 1, 1)
        noisy = (1.0 - s) * latents + s * noise
        packed = QwenImagePipeline._pack_latents(noisy, b, c, h, w)
        mask = text["mask"]
        pred = self.denoiser(
            hidden_states=packed.to(self.dtype),
            timestep=timesteps / 1000.0,
            guidance=None,
            encoder_hidden_states=text["embeds"].to(self.dtype),
            encoder_hidden_states_mask=None if bool(mask.all()) else mask,
            img_shapes=[[(1, h // 2, w // 2)]] * b,
            return_dict=False,
        )[0]
        target = QwenImagePipeline._pack_latents(noise - latents, b, c, h, w)
        return F.mse_loss(pred.float(), target.float(), reduction="mean")


ARCH_CLASSES = {"sdxl": SDXL, "flux1": Flux1, "flux2-klein": Flux2Klein, "zimage": ZImage, "qwen-image": QwenImage}


# ---------------------------------------------------------------------------------------------
# LoRA, optimizer, saving


def add_lora(model, cfg: Config, targets: list[str]):
    from peft import LoraConfig

    config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, init_lora_weights="gaussian", target_modules=targets)
    model.add_adapter(config)
    return config


def make_optimizer(cfg: Config, params, device):
    import torch

    name = cfg.optimizer
    if name == "adamw":
        # One fused kernel for all LoRA tensors on CUDA (the foreach default launches per group).
        fused = {"fused": True} if device.type == "cuda" else {}
        return torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8, **fused)
    if name == "adamw8bit":
        if device.type != "cuda":
            raise WorkerError("E_NOT_SUPPORTED", "adamw8bit needs a CUDA GPU (bitsandbytes)", hint="use optimizer: adamw on this machine")
        try:
            import bitsandbytes as bnb  # noqa: PLC0415
        except ImportError:
            raise WorkerError("E_NOT_SUPPORTED", "adamw8bit needs bitsandbytes", hint="worker/.venv/bin/pip install bitsandbytes, or use adamw") from None
        return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=cfg.learning_rate, scale_parameter=False, relative_step=False, warmup_init=False)
    if name == "prodigy":
        try:
            import prodigyopt  # noqa: PLC0415
        except ImportError:
            raise WorkerError("E_NOT_SUPPORTED", "prodigy needs the prodigyopt package", hint="worker/.venv/bin/pip install prodigyopt, or use adamw") from None
        return prodigyopt.Prodigy(params, lr=cfg.learning_rate, weight_decay=1e-4)
    raise WorkerError("E_USAGE", f"unknown optimizer '{name}'", hint="adamw, adamw8bit, adafactor or prodigy")


def lora_state_dict(model, prefix: str) -> dict:
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(model)
    # transformers 5 flattened CLIPTextModel (no `.text_model`); files keep the canonical
    # `text_encoder.text_model.encoder...` names (lora-formats.md §2a) that every loader reads.
    flat_clip = prefix.startswith("text_encoder") and not hasattr(model, "text_model") and hasattr(model, "encoder")
    return {f"{prefix}.{'text_model.' if flat_clip else ''}{k}": v.detach().to("cpu").contiguous() for k, v in state.items()}


def lora_metadata(cfg: Config, lora_configs: dict, step: int, n_images: int) -> dict:
    """diffusers' adapter metadata plus the kohya `ss_*` and `modelspec.*` keys tools read."""
    from . import __version__

    packed: dict = {}
    for prefix, config in lora_configs.items():
        d = config.to_dict()
        for k, v in d.items():
            if isinstance(v, set):
                v = sorted(v)
            packed[f"{prefix}.{k}"] = v
    arch_names = {"sdxl": "stable-diffusion-xl-v1-base/lora", "flux1": "Flux.1-dev/lora", "flux2-klein": "Flux.2-klein/lora", "zimage": "Z-Image/lora", "qwen-image": "Qwen-Image/lora"}
    meta = {
        "format": "pt",
        "lora_adapter_metadata": json.dumps(packed, indent=2, sort_keys=True, default=str),
        "ss_network_module": "peft.lora",
        "ss_network_dim": str(cfg.rank),
        "ss_network_alpha": str(cfg.alpha),
        "ss_learning_rate": str(cfg.learning_rate),
        "ss_max_train_steps": str(cfg.steps),
        "ss_steps": str(step),
        "ss_resolution": f"({cfg.resolution}, {cfg.resolution})",
        "ss_num_train_images": str(n_images),
        "ss_optimizer": cfg.optimizer,
        "ss_lr_scheduler": cfg.lr_scheduler,
        "ss_seed": str(cfg.seed),
        "ss_base_model_version": cfg.arch,
        "ss_sd_model_name": cfg.base,
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": arch_names[cfg.arch],
        "modelspec.implementation": "diffusers",
        "modelspec.title": cfg.name,
        "modelspec.resolution": f"{cfg.resolution}x{cfg.resolution}",
        "loraspec.version": __version__,
        "loraspec.trainer": "diffusers",
    }
    if cfg.trigger_word:
        meta["modelspec.trigger_phrase"] = cfg.trigger_word
        meta["ss_tag_frequency"] = json.dumps({"dataset": {cfg.trigger_word: n_images}})
    if cfg.contract_hash:
        meta["loraspec.contract_hash"] = cfg.contract_hash
    return meta


def atomic_save_safetensors(tensors: dict, path: str, metadata: dict) -> None:
    from safetensors.torch import save_file

    checkpoint_integrity.atomic_save(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def atomic_torch_save(obj, path: str) -> None:
    import torch

    checkpoint_integrity.atomic_save(path, lambda tmp: torch.save(obj, tmp))


# ---------------------------------------------------------------------------------------------
# the run


class Diverged(Exception):
    pass


def _finite_params(params) -> bool:
    import torch

    return all(torch.isfinite(p).all().item() for p in params)


def train_once(cfg: Config, group=None) -> dict:
    import torch

    group = group or distributed.Group()
    device = group.device(choose_device(cfg))
    dtype = choose_dtype(cfg, device)
    if device.type == "cuda":
        disable_cudnn_sdpa()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)

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
    denoiser = arch.denoiser
    for module in [denoiser, pipe.vae, *arch.text_encoders()]:
        module.requires_grad_(False)

    # Cache latents and (unless the text encoder trains) caption embeddings, then free the VAE
    # and text encoders: only the denoiser stays in memory while training.
    phase("cache", f"encoding {len(items)} images and captions")
    cache = []
    with torch.no_grad():
        for i, (path, caption) in enumerate(items):
            pixels, original_size, crop = load_image(path, cfg.resolution)
            latents = arch.encode_images(pixels.unsqueeze(0))
            text = None if cfg.train_text_encoder else {k: [e.detach() for e in v] if isinstance(v, list) else v.detach() for k, v in arch.encode_text([caption]).items()}
            extra = {"time_ids": [list(original_size) + list(crop) + [cfg.resolution, cfg.resolution]]}
            cache.append({"latents": latents.detach(), "text": text, "caption": caption, "extra": extra})
            emit({"type": "progress", "task": "prep", "current": i + 1, "total": len(items)})
    pipe.vae = None
    if not cfg.train_text_encoder:
        for attr in ("text_encoder", "text_encoder_2"):
            if hasattr(pipe, attr):
                setattr(pipe, attr, None)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    lora_configs = {arch.denoiser_attr: add_lora(denoiser, cfg, TARGETS[cfg.arch])}
    trainable = [denoiser]
    if cfg.train_text_encoder:
        if cfg.arch != "sdxl":
            raise WorkerError("E_NOT_SUPPORTED", f"train_text_encoder is only supported for sdxl in the built-in trainer")
        for attr, encoder in (("text_encoder", pipe.text_encoder), ("text_encoder_2", pipe.text_encoder_2)):
            lora_configs[attr] = add_lora(encoder, cfg, TEXT_ENCODER_TARGETS)
            trainable.append(encoder)
    levers = speed.choose_levers(cfg, device, arch)
    for reason in levers["reasons"]:
        emit({"type": "log", "level": "info", "message": reason})
    if cfg.quantize == "fp8" or levers["fp8_matmul"]:
        matmul = levers["fp8_matmul"]
        counts = speed.quantize_fp8_(denoiser, device, dtype, matmul=matmul, fp8_base=cfg.quantize == "fp8")
        held = "held in float8 e4m3 with per-row scales" if cfg.quantize == "fp8" else "as float8 e4m3 copies"
        math = "; fp8 GEMMs for the forward" + ("" if cfg.quantize == "fp8" else " and the input gradient") if matmul else ""
        emit({"type": "log", "level": "info", "message": f"fp8 base: {counts['layers']} linears ({counts['params'] / 1e9:.2f}B weights) {held}{math}"})
    if levers["channels_last"]:
        speed.use_channels_last(denoiser)
    params = []
    for module in trainable:
        for p in module.parameters():
            if p.requires_grad:
                p.data = p.data.float()  # fp32 LoRA parameters over a bf16/fp32 base
                params.append(p)
    if cfg.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    if levers["compile"]:
        n = speed.compile_blocks(denoiser)
        emit({"type": "log", "level": "info", "message": f"compiling {n} repeated blocks (the first steps are slow while torch.compile works)"})
    denoiser.train()

    from diffusers.optimization import get_scheduler

    if levers["cuda_graphs"]:
        optimizer = speed.make_capturable_adamw(params, cfg.learning_rate, device, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)
        stepper = speed.GraphedStep(arch, params, optimizer, max_grad_norm=1.0)
    else:
        optimizer = make_optimizer(cfg, params, device)
        stepper = None
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer=optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)

    start_step = 0
    losses: list[float] = []
    resume = cfg.resume_from
    checkpoint_integrity.remove_stale_temp_files(cfg.output_dir)
    if resume == "latest":
        resume = checkpoint_integrity.newest_good_checkpoint(cfg.output_dir)
        if resume is None:
            log("resume_from latest: no checkpoint yet, starting at step 0")
    if resume:
        start_step, losses = load_checkpoint(resume, trainable, lora_configs, optimizer, scheduler)
        emit({"type": "log", "level": "info", "message": f"resumed from {resume} at step {start_step}"})

    phase("train", f"{cfg.steps} steps, rank {cfg.rank}, lr {cfg.learning_rate}, {device.type}")
    inject_nan = cfg.debug.get("inject_nan_at_step")
    raise_oom = cfg.debug.get("raise_oom_once") and not cfg.debug.get("_oom_raised")
    started = time.time()
    step = start_step
    checkpoints = []
    with soft_cancel():
        step = _train_loop(cfg, arch, cache, params, trainable, lora_configs, optimizer, scheduler, losses, checkpoints,
                           items, device, start_step, started, inject_nan, raise_oom, stepper, group)
    if isinstance(step, dict):  # stopped early (debug.stop_after_step)
        return step

    if not _finite_params(params):
        raise Diverged("LoRA weights are not finite at the end of training")
    if not group.is_main:  # rank 0 saves; the weights are the same on every rank
        return {"steps": step, "rank": group.rank}
    phase("save")
    final = os.path.join(cfg.output_dir, f"{cfg.name}.safetensors")
    tensors = {}
    for attr, module in zip(lora_configs, trainable):
        tensors.update(lora_state_dict(module, attr))
    atomic_save_safetensors(tensors, final, lora_metadata(cfg, lora_configs, step, len(items)))
    emit({"type": "checkpoint", "step": step, "path": final})
    elapsed = time.time() - started
    result = {
        "path": os.path.abspath(final),
        "steps": step,
        "startStep": start_step,
        "finalLoss": losses[-1] if losses else None,
        "seconds": elapsed,
        "secondsPerStep": elapsed / max(1, step - start_step),
        "device": device.type,
        "processes": group.world,
        "checkpoints": checkpoints,
        "keys": len(tensors),
    }
    if device.type == "cuda":
        result["peakMemoryGiB"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def _train_loop(cfg, arch, cache, params, trainable, lora_configs, optimizer, scheduler, losses, checkpoints, items, device,
                start_step, started, inject_nan, raise_oom, stepper=None, group=None):
    """The optimizer steps. Returns the last step, or a result dict when stopped early. With a
    `stepper` (speed.GraphedStep) one call does the loss, backward, clip and optimizer step. With
    a `group` (distributed.Group) this rank trains its micro-batches and gradients are averaged."""
    import torch

    group = group or distributed.Group()
    n = len(cache)
    step = start_step
    while step < cfg.steps:
        step += 1
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for local in range(cfg.gradient_accumulation):
            # Deterministic data order and noise per (seed, step): a resumed run sees exactly
            # the batches and noise the uninterrupted run would have. With N processes, rank r
            # takes the micro-batch one process would take as number local * N + r.
            micro = local * group.world + group.rank
            g = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + step * 97 + micro)
            idx = torch.randint(0, n, (cfg.batch_size,), generator=g).tolist()
            batch = [cache[i] for i in idx]
            latents = torch.cat([b["latents"] for b in batch]).to(device)
            if cfg.train_text_encoder:
                text = arch.encode_text([b["caption"] for b in batch])
            else:
                text = arch.collate_text([b["text"] for b in batch])
            extra = {"time_ids": [t for b in batch for t in b["extra"]["time_ids"]]}
            noise_gen = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + step * 31 + micro)
            if raise_oom:
                cfg.debug["_oom_raised"] = True
                raise torch.OutOfMemoryError("CUDA out of memory (injected by debug.raise_oom_once)")
            if stepper is not None:
                loss = stepper.step(latents, text, extra, noise_gen)
            else:
                loss = arch.loss(latents, text, extra, noise_gen) / cfg.gradient_accumulation
            if inject_nan is not None and step == int(inject_nan):
                loss = loss * float("nan")
            value = float(loss.detach().item())
            if not math.isfinite(value) and not group.active:
                emit({"type": "loss", "step": step, "loss": value})
                raise Diverged(f"loss is {value} at step {step}")
            if stepper is None:
                loss.backward()
            step_loss += value
        if group.active:
            # every rank must agree to stop: the mean is NaN when any rank's loss is
            step_loss = group.mean(step_loss)
            if not math.isfinite(step_loss):
                emit({"type": "loss", "step": step, "loss": step_loss})
                raise Diverged(f"loss is {step_loss} at step {step}")
            group.average_gradients(params)
        if stepper is None:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        scheduler.step()
        losses.append(step_loss)
        recent = losses[-50:]
        emit({"type": "loss", "step": step, "loss": step_loss, "lr": scheduler.get_last_lr()[0], "avgLoss": sum(recent) / len(recent)})
        check_spike(cfg, losses, step)
        elapsed = time.time() - started
        done_here = step - start_step
        rate = done_here / elapsed if elapsed > 0 else None
        emit({"type": "progress", "task": "train", "current": step, "total": cfg.steps, "rate": rate,
              "eta": (cfg.steps - step) / rate if rate else None})
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps and group.is_main:
            if not _finite_params(params):
                raise Diverged(f"LoRA weights are not finite at step {step}")
            path = save_checkpoint(cfg, step, trainable, lora_configs, optimizer, scheduler, losses, len(items))
            checkpoints.append(path)
            emit({"type": "checkpoint", "step": step, "path": path})
        if _TEST_STEP_DELAY_S:
            time.sleep(_TEST_STEP_DELAY_S)
        stop_after = cfg.debug.get("stop_after_step")
        if stop_after is not None and step >= int(stop_after) and step < cfg.steps:
            # Simulates an interrupted run (tests of resume): no final file is written.
            return {"stopped": True, "steps": step, "startStep": start_step, "checkpoints": checkpoints,
                    "finalLoss": losses[-1] if losses else None}

        if group.any(cancel_requested()):
            # Stopped by the user between steps: keep this step as a checkpoint so `resume_from:
            # latest` continues here, then end as cancelled.
            if _finite_params(params) and group.is_main:
                path = save_checkpoint(cfg, step, trainable, lora_configs, optimizer, scheduler, losses, len(items))
                checkpoints.append(path)
                emit({"type": "checkpoint", "step": step, "path": path})
            raise Cancelled("stopped at step %d" % step)
    return step


def check_spike(cfg: Config, losses: list[float], step: int) -> None:
    factor = cfg.loss_spike_factor
    if not factor or len(losses) < SPIKE_MIN_STEPS:
        return
    before = sorted(losses[-SPIKE_WINDOW - SPIKE_RECENT : -SPIKE_RECENT])
    if len(before) < SPIKE_MIN_STEPS - SPIKE_RECENT:
        return
    median = before[len(before) // 2]
    recent = sum(losses[-SPIKE_RECENT:]) / SPIKE_RECENT
    if median > 0 and recent > factor * median:
        raise Diverged(f"loss spiked to {recent:.4g} (mean of the last {SPIKE_RECENT} steps) against a median of {median:.4g} at step {step}")


def save_checkpoint(cfg, step, trainable, lora_configs, optimizer, scheduler, losses, n_images) -> str:
    import numpy as np
    import torch

    folder = os.path.join(cfg.output_dir, "checkpoints", f"step-{step:06d}")
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for attr, module in zip(lora_configs, trainable):
        tensors.update(lora_state_dict(module, attr))
    lora_path = os.path.join(folder, f"{cfg.name}.safetensors")
    atomic_save_safetensors(tensors, lora_path, lora_metadata(cfg, lora_configs, step, n_images))
    state = {
        "step": step,
        "losses": losses,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "config": {k: v for k, v in cfg.__dict__.items() if k != "debug"},
    }
    # state.pt is written last: a folder without it is an unfinished checkpoint and is ignored.
    atomic_torch_save(state, os.path.join(folder, "state.pt"))
    # Optimizer states are 2x the LoRA; only the newest KEEP_STATES stay resumable. The LoRA files
    # of older checkpoints stay (validation compares them).
    root = os.path.dirname(folder)
    done = sorted(d for d in os.listdir(root) if d.startswith("step-") and os.path.exists(os.path.join(root, d, "state.pt")))
    for old in done[:-KEEP_STATES]:
        os.remove(os.path.join(root, old, "state.pt"))
        checkpoint_integrity.remove_checksum(os.path.join(root, old, "state.pt"))
    return lora_path


def load_checkpoint(folder, trainable, lora_configs, optimizer, scheduler):
    import numpy as np
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    if os.path.isdir(os.path.join(folder, "checkpoints")):  # a run's output folder: its latest checkpoint
        latest = checkpoint_integrity.newest_good_checkpoint(folder)
        if latest is None:
            raise WorkerError("E_FILE_NOT_FOUND", f"no finished checkpoint under {folder}")
        folder = latest
    state_path = os.path.join(folder, "state.pt")
    if not os.path.exists(state_path):
        raise WorkerError("E_FILE_NOT_FOUND", f"no finished checkpoint in {folder} (state.pt missing)")
    files = [f for f in os.listdir(folder) if f.endswith(".safetensors")]
    tensors = load_file(os.path.join(folder, files[0]))
    for attr, module in zip(lora_configs, trainable):
        prefix = attr + "."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not hasattr(module, "text_model"):
            sub = {k.removeprefix("text_model."): v for k, v in sub.items()}
        try:
            result = set_peft_model_state_dict(module, sub)
        except RuntimeError as e:
            raise WorkerError(
                "E_LORA_SHAPE_MISMATCH",
                f"checkpoint {folder} does not fit this run (a different rank or base?): {str(e).splitlines()[0][:200]}",
                hint="resume with the rank and base the checkpoint was trained with, or start a new run",
            ) from None
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise WorkerError("E_LORA_SHAPE_MISMATCH", f"checkpoint has keys this model does not: {unexpected[:3]}")
    state = torch.load(state_path, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state.get("rng") or {}
    if rng.get("torch") is not None:
        torch.set_rng_state(rng["torch"])
    if rng.get("python") is not None:
        random.setstate(rng["python"])
    if rng.get("numpy") is not None:
        np.random.set_state(rng["numpy"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"]), list(state.get("losses", []))


def apply_fallback(cfg: Config, fallback: str) -> str:
    if fallback == "gradient_checkpointing":
        if cfg.gradient_checkpointing:
            return ""
        cfg.gradient_checkpointing = True
        return "turned on gradient checkpointing"
    if fallback == "quantize_base":
        if cfg.quantize == "fp8":
            return ""
        cfg.quantize = "fp8"
        return "held the base in fp8"
    if fallback == "smaller_batch":
        if cfg.batch_size <= 1:
            return ""
        cfg.gradient_accumulation *= 2
        cfg.batch_size = max(1, cfg.batch_size // 2)
        return f"batch {cfg.batch_size} x accumulation {cfg.gradient_accumulation}"
    if fallback == "optimizer_8bit":
        if cfg.optimizer == "adamw8bit":
            return ""
        cfg.optimizer = "adamw8bit"
        return "switched to adamw8bit"
    return ""


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
