"""One training loss per architecture family: encode captions, encode images, the loss."""

from __future__ import annotations

from typing import Any

from ..config import Config

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
