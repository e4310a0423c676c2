"""Flow-matching architectures: FLUX.1, FLUX.2 [klein], Z-Image, Qwen-Image (velocity loss on packed latents)."""

from __future__ import annotations

from .. import regularize
from .base import Arch

# Token count for the shift when no latents shape is given: the schedule's base (mu = baseShift).
REG_BASE_TOKENS = regularize.REG["shift"]["baseSeqLen"]


def pack_2x2(latents):
    """(B, C, H, W) latents -> (B, H/2 * W/2, C*4) tokens of 2x2 patches, row-major (FLUX.1's and
    Qwen-Image's packing, diffusers' _pack_latents); H and W may differ."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_2x2(tokens, h: int, w: int):
    """pack_2x2's inverse for an (H, W) latent grid."""
    b, _, d = tokens.shape
    return tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, d // 4, h, w)


class FlowArch(Arch):
    """Shared flow-matching loss for FLUX.1 and FLUX.2: x_t = (1 - s) x0 + s noise, target noise - x0."""

    def __init__(self, pipe, cfg, device, dtype):
        super().__init__(pipe, cfg, device, dtype)
        import copy

        self.noise_scheduler = copy.deepcopy(pipe.scheduler)

    # Latent pixels per image token (2x2 packing); FLUX.2's latents come patchified (1).
    patch = 2

    def sample_sigmas(self, b, generator, device, shape=None):
        """(sigmas, timesteps) by cfg.timestep_sampling (regularize.flow_sigmas); `shape` (the
        latents') gives the token count the resolution-dependent shift reads."""
        tokens = (shape[-2] // self.patch) * (shape[-1] // self.patch) if shape is not None else REG_BASE_TOKENS
        s = self.noise_scheduler
        if s.sigmas.device != device:  # once, as SDXL's alphas_cumprod: a host copy per step waits for the GPU
            s.sigmas, s.timesteps = s.sigmas.to(device), s.timesteps.to(device)
        return regularize.flow_sigmas(self.cfg.timestep_sampling, self.noise_scheduler, b, generator, device, tokens)

    def draw(self, latents, generator) -> dict:
        """The step's random inputs (noise, then the timestep draw), apart from the loss so a CUDA graph can replay an
        arch's loss_from with fresh draws copied in (speed.GraphedStep)."""
        import torch

        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        sigmas, timesteps = self.sample_sigmas(latents.shape[0], generator, latents.device, latents.shape)
        return {"noise": noise, "sigmas": sigmas, "timesteps": timesteps}

    @staticmethod
    def noisy(latents, draws):
        """x_t = (1 - s) x0 + s noise for a draw."""
        s = draws["sigmas"].view(latents.shape[0], 1, 1, 1)
        return (1.0 - s) * latents + s * draws["noise"]

    def noised(self, latents, generator):
        """One draw of the flow-matching input: (noise, sigmas, timesteps, x_t = (1 - s) x0 + s noise)."""
        d = self.draw(latents, generator)
        return d["noise"], d["sigmas"], d["timesteps"], self.noisy(latents, d)


class Flux1(FlowArch):
    name = "flux1"

    def __init__(self, pipe, cfg, device, dtype):
        super().__init__(pipe, cfg, device, dtype)
        self._image_ids = {}

    def image_ids(self, h: int, w: int, device):
        """FluxPipeline._prepare_latent_image_ids for an (h, w) token grid, built once per grid:
        diffusers builds them on the host, and that copy to the GPU waits for it every step."""
        from diffusers import FluxPipeline

        key = (h, w, str(device))
        if key not in self._image_ids:
            self._image_ids[key] = FluxPipeline._prepare_latent_image_ids(1, h, w, device, self.dtype)
        return self._image_ids[key]

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

    def static_extra(self, extra, device) -> dict:
        """What loss_from reads of `extra`, as device tensors (no host-to-device copy inside a captured graph): the toy
        base's per-pixel loss weight, when the entry has one; SDXL's time ids are not FLUX's."""
        weight = extra.get("loss_weight") if extra else None
        return {} if weight is None else {"loss_weight": weight.to(device)}

    def loss(self, latents, text, extra, generator):
        return self.loss_from(latents, text, extra, self.draw(latents, generator))

    def loss_from(self, latents, text, extra, draws):
        import torch
        import torch.nn.functional as F

        b, _, h, w = latents.shape
        noise, timesteps = draws["noise"], draws["timesteps"]
        packed = pack_2x2(self.noisy(latents, draws))
        img_ids = self.image_ids(h // 2, w // 2, latents.device)
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
        pred = unpack_2x2(pred, h, w)
        target = noise - latents
        weight = extra.get("loss_weight") if extra else None
        if weight is not None:  # (B, 1, H, W) per latent pixel (the toy base's object weighting); mean 1 keeps the scale
            return ((pred.float() - target.float()) ** 2 * weight).mean() / weight.mean()
        return F.mse_loss(pred.float(), target.float(), reduction="mean")


class Flux2Klein(FlowArch):
    name = "flux2-klein"
    patch = 1

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
        import torch.nn.functional as F
        from diffusers import Flux2KleinPipeline

        noise, _, timesteps, noisy = self.noised(latents, generator)
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
        self.check_rope_range(latents.shape[-2:], pixels.shape[-2:])
        return (latents.float() - vae.config.shift_factor) * vae.config.scaling_factor

    def check_rope_range(self, latent_hw, pixel_hw) -> None:
        """Z-Image's rotary table has axes_lens positions per axis: a bucket whose patch grid is larger
        would index past it (a CUDA device-side assert that poisons the process), so it is refused here,
        while latents are cached, naming the limit."""
        from ...protocol import WorkerError

        conf = self.denoiser.config
        patch = int(conf.all_patch_size[0])
        grid = [int(n) // patch for n in latent_hw]
        limits = [int(n) for n in conf.axes_lens[1:3]]
        if any(g > lim for g, lim in zip(grid, limits)):
            raise WorkerError(
                "E_NOT_SUPPORTED",
                f"a {pixel_hw[1]}x{pixel_hw[0]} image is {grid[1]}x{grid[0]} patches; this Z-Image transformer places at most {limits[1]}x{limits[0]} (axes_lens)",
                hint="lower dataset.resolution or dataset.buckets.max_side",
            )

    def loss(self, latents, text, extra, generator):
        import torch
        import torch.nn.functional as F

        noise, sigmas, _, noisy = self.noised(latents, generator)
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
        import torch.nn.functional as F

        b, _, h, w = latents.shape
        noise, _, timesteps, noisy = self.noised(latents, generator)
        packed = pack_2x2(noisy)
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
        target = pack_2x2(noise - latents)
        return F.mse_loss(pred.float(), target.float(), reduction="mean")
