"""A rendered sample from latents to a PNG on disk, with as little of it as possible on the training
thread (train/samples.py; issue 22).

SDXL's pipeline is asked for its latents (output_type="latent") and they are decoded here, on the
path the pipeline's own output_type="pil" takes (diffusers 0.42.1, pipeline_stable_diffusion_xl.py
__call__ after the denoising loop; image_processor.py postprocess / pt_to_numpy / numpy_to_pil):
latents * latents_std / scaling_factor + latents_mean when the VAE config has both, else latents /
scaling_factor; vae.decode; (x * 0.5 + 0.5).clamp(0, 1) in the decode's dtype when the image
processor normalizes; then in float32 x 255, rounded half to even, uint8. The only differences: the
x 255 and rounding run on the device (the same IEEE float32 operations as numpy's), and only the uint8
image (a quarter of the float32 bytes) is copied to the host. A VAE held in fp16 with force_upcast
decodes in fp32, as the pipeline does (fp16's range overflows in SDXL's VAE); bf16 (fp32's exponent
range) and fp32 VAEs decode in their own dtype, as the pipeline also does in this diffusers version
(it upcasts only fp16). A pipeline with a watermarker, or another arch, gives its own PIL image.

The PNG encode and atomic write then run on the run's PNG writer thread (a background_save.Writer of
its own, one write in flight, so a sample never waits for a checkpoint's write; it touches no GPU, so
CUDA-graph captures need not wait for it); the `sample` event and the renderer's record come from
there once the file is on disk, as the `checkpoint` event does. A failed write's error is raised on
the training thread (the next step's check, the next PNG's submit, or the end of the run), as a
synchronous write raised it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from ..checkpoint_integrity import atomic_write


def decodes_itself(pipe) -> bool:
    """The pipelines whose latents this module decodes (SDXL's, without a watermarker)."""
    from diffusers import StableDiffusionXLPipeline

    return isinstance(pipe, StableDiffusionXLPipeline) and getattr(pipe, "watermark", None) is None


def decode_sdxl(pipe, latents) -> Any:
    """The first image of `latents` as a host uint8 array (height, width, 3): the pipeline's own image."""
    import torch

    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and vae.config.force_upcast
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        latents = latents.to(torch.float32 if upcast else latents.dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            std = torch.tensor(std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor
        image = vae.decode(latents.to(vae.device), return_dict=False)[0]
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
    if pipe.image_processor.config.do_normalize:
        image = (image * 0.5 + 0.5).clamp(0, 1)
    pixels = (image[0].permute(1, 2, 0).float() * 255).round().to(torch.uint8)
    return pixels.cpu().numpy()


def render_pixels(pipe, call: Callable[..., Any], timer: "Breakdown") -> Any:
    """One image as host uint8 pixels (SDXL: latents decoded here) or the pipeline's PIL image."""
    if not decodes_itself(pipe):
        with timer.part("pipeline"):  # denoise, decode and postprocess: the pipeline's own
            return call(output_type="pil").images[0]
    with timer.part("denoise"):
        latents = call(output_type="latent").images
        timer.sync(latents)
    with timer.part("decode"):
        return decode_sdxl(pipe, latents)


def write_png(image, path: str) -> None:
    """Written beside its final name and renamed (the worker's atomic writer): a reader never sees half a PNG."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            image.save(f, format="PNG")

    atomic_write(path, write)


def save(image, path: str, announce: Callable[[], None], writer: Optional[Any]) -> None:
    """The PNG on the writer thread (or here, without one); `announce` once it is on disk."""

    def job() -> None:
        write_png(image, path)
        announce()

    if writer is None:
        job()
    else:
        writer.submit(job)


class Breakdown:
    """Seconds per part of a render on the training thread (the samples log line)."""

    ORDER = ("merge", "pipeline", "denoise", "decode", "png")  # merge: the sample's LoRA merged (train/sample_merge.py)

    def __init__(self, device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    def part(self, name: str):
        import contextlib

        @contextlib.contextmanager
        def timed():
            t = time.perf_counter()
            try:
                yield
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t

        return timed()

    def sync(self, tensor) -> None:
        """Waits for the device's work so far (the denoise's kernels are not counted in the decode);
        the decode's copy to the host waits for them anyway."""
        import torch

        if getattr(self.device, "type", "cpu") == "cuda" and getattr(tensor, "is_cuda", False):
            torch.cuda.synchronize(self.device)

    def text(self, queued: bool) -> str:
        png = "png queue" if queued else "png"
        return ", ".join(f"{png if k == 'png' else k} {self.seconds[k]:.2f} s" for k in self.ORDER if k in self.seconds)
