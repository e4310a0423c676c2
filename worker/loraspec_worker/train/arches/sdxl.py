"""SDXL: DDPM noise (or v) prediction at a uniform timestep; graph-replayable (draw / loss_from)."""

from __future__ import annotations

from .. import regularize
from .base import Arch

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
        return {"noise": regularize.offset_noise(noise, self.cfg, generator), "timesteps": timesteps}

    def static_extra(self, extra, device) -> dict:
        """`extra` as device tensors (no host-to-device copy inside a captured graph)."""
        import torch

        return {"time_ids": torch.tensor(extra["time_ids"], device=device, dtype=self.dtype)}

    def loss(self, latents, text, extra, generator):
        return self.loss_from(latents, text, extra, self.draw(latents, generator))

    def loss_from(self, latents, text, extra, draws):
        import torch

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
        v_prediction = self.noise_scheduler.config.prediction_type == "v_prediction"
        target = self.noise_scheduler.get_velocity(latents, noise, timesteps) if v_prediction else noise
        return regularize.weighted_mse(pred, target, self.cfg, self.noise_scheduler.alphas_cumprod, timesteps, v_prediction)
