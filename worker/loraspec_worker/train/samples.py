"""Sample images while training (the request's `samples`, resolved by core's compile/samples.ts).

The sample prompts are encoded once at load, while the text encoders are still there (they are
dropped once the captions are cached); only their outputs are kept. Every `every` optimizer steps
and after the last one (with `first` also before the first step of a fresh run: the base, the LoRA
still zero), each prompt x seed is rendered by the base pipeline with the in-memory
denoiser (LoRA active) and the VAE (kept for this), under no_grad, with eval/train mode restored,
outside the training's CUDA graph and, but for sample_merge "compiled" (the LoRA path through the compiled
blocks, recompiled once for no_grad), its compiled regions (SDXL's UNet forward replays its own
sample graph on CUDA: train/sample_graph.py, over its LoRA merged into weights of its own:
train/sample_merge.py; FLUX's LoRA merged per call: train/sample_merge_call.py), and with the training
RNG state untouched: a run with samples on has the same loss curve as one with them off. PNGs are written atomically as
<output_dir>/samples/step-000250-p0-s42.png on the run's PNG writer thread, each announced by a `sample`
event once on disk; SDXL's latents are decoded as its pipeline decodes them (train/sample_output.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from typing import Any, Optional

from ..protocol import emit, is_oom, warning
from . import sample_graph, sample_merge, sample_output
from .config import TABLE, Config

# The warning of a compiled sample that failed (sample_merge "compiled"; core's BUILTIN_TRAINER.sampleMerge): the
# samples render eagerly from then on.
COMPILE_FALLBACK = TABLE["sampleMerge"]["compiledWarning"]


def _encode_sdxl(pipe, prompts: list[str], device, guidance: float) -> list[dict]:
    out = []
    cfg = guidance > 1.0  # the SDXL pipeline runs CFG only above 1
    for prompt in prompts:
        embeds, neg, pooled, neg_pooled = pipe.encode_prompt(
            prompt=prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg, negative_prompt="" if cfg else None
        )
        kwargs = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if cfg:
            kwargs.update(negative_prompt_embeds=neg, negative_pooled_prompt_embeds=neg_pooled)
        out.append({k: v.detach() for k, v in kwargs.items()})
    return out


def _encode_flux1(pipe, prompts: list[str], device, guidance: float, max_sequence_length: int) -> list[dict]:
    out = []
    for prompt in prompts:
        embeds, pooled, text_ids = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=device, max_sequence_length=max_sequence_length)
        out.append({"prompt_embeds": embeds.detach(), "pooled_prompt_embeds": pooled.detach(), "_text_ids": text_ids.detach()})
    return out


def _encode_flux2_klein(pipe, prompts: list[str], device, guidance: float, max_sequence_length: int) -> list[dict]:
    kwargs = {"device": device, "max_sequence_length": max_sequence_length}
    n_layers = pipe.text_encoder.config.num_hidden_layers
    if n_layers < 28:  # tiny encoders: evenly spaced layers, as the arch's own encode_text
        kwargs["text_encoder_out_layers"] = tuple(max(1, round(n_layers * k / 3)) for k in (1, 2, 3))
    cfg = guidance > 1.0 and not pipe.config.is_distilled  # the pipeline's do_classifier_free_guidance
    negative = pipe.encode_prompt(prompt="", **kwargs)[0].detach() if cfg else None
    out = []
    for prompt in prompts:
        item = {"prompt_embeds": pipe.encode_prompt(prompt=prompt, **kwargs)[0].detach()}
        if negative is not None:
            item["negative_prompt_embeds"] = negative
        out.append(item)
    return out


def _encode_zimage(pipe, prompts: list[str], device, guidance: float, max_sequence_length: int) -> list[dict]:
    cfg = guidance > 1.0
    out = []
    for prompt in prompts:
        embeds, negative = pipe.encode_prompt(prompt=[prompt], device=device, do_classifier_free_guidance=cfg, negative_prompt=[""] if cfg else None,
                                              max_sequence_length=max_sequence_length)
        item = {"prompt_embeds": [e.detach() for e in embeds]}
        if cfg:
            item["negative_prompt_embeds"] = [e.detach() for e in negative]
        out.append(item)
    return out


def _encode_qwen_image(pipe, prompts: list[str], device, guidance: float, max_sequence_length: int) -> list[dict]:
    cfg = guidance > 1.0  # Qwen-Image's guidance is true CFG (true_cfg_scale), run only with a negative prompt
    def encode(text):
        embeds, mask = pipe.encode_prompt(prompt=[text], device=device, max_sequence_length=max_sequence_length)
        return embeds.detach(), None if mask is None else mask.detach()
    negative = encode("") if cfg else None
    out = []
    for prompt in prompts:
        embeds, mask = encode(prompt)
        item = {"prompt_embeds": embeds, "prompt_embeds_mask": mask}
        if negative is not None:
            item.update(negative_prompt_embeds=negative[0], negative_prompt_embeds_mask=negative[1])
        out.append(item)
    return out


class SampleRenderer:
    """The encoded sample prompts and the settings to render them with (one per run, rank 0 renders)."""

    def __init__(self, cfg: Config, pipe, arch, embeds: list[dict], merge_mode: Optional[str] = None):
        s = cfg.samples
        self.cfg = cfg
        self.pipe = pipe
        self.arch = arch
        self.every = int(s["every"])
        self.first = bool(s["first"])  # also at step 0, before training (the base's images)
        self.prompts = list(s["prompts"])
        self.seeds = [int(x) for x in s["seeds"]]
        self.embeds = embeds
        self.kwargs = {"num_inference_steps": int(s["steps"]), GUIDANCE_ARG.get(cfg.arch, "guidance_scale"): float(s["guidance_scale"]),
                       "width": int(s["width"]), "height": int(s["height"])}
        self.folder = os.path.join(cfg.output_dir, "samples")
        self.rendered: list[dict] = []
        self.renders = 0  # render() calls begun (self.rendered fills as the PNGs land)
        # SDXL on CUDA: the UNet forward replays one CUDA graph, captured at the first sample (train/sample_graph.py).
        self.graphed = sample_graph.make(cfg.arch, arch.device)
        # A plain LoRA: SDXL's merged into buffers of its own while sampling, FLUX's per call (train/sample_merge.py).
        mode = merge_mode or cfg.sample_merge  # the run's (setup.applied_sample_merge), else the request's
        self.merge = sample_merge.make(mode, arch.denoiser)
        # sample_merge "compiled": the LoRA path through the training's compiled blocks (recompiled once for
        # no_grad / eval); every other mode runs them eagerly. A compiled sample that fails falls back to eager.
        self.compiled = mode == "compiled"

    def captures_next(self) -> bool:
        """The next render captures the sample graph: no other thread may touch the GPU meanwhile."""
        return self.graphed is not None and self.graphed.captures_next()

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.cfg.steps

    def render(self, step: int, writer=None) -> list[dict]:
        """Every prompt x seed at this step; returns the images as {path, prompt, seed, step}. With a
        writer (background_save.Writer) the PNGs are written on its thread, each announced (a `sample`
        event, a record in self.rendered) once on disk; the caller waits for the writer before the run ends."""
        self.renders += 1
        denoiser = self.arch.denoiser
        was_training = denoiser.training
        started = time.time()
        timer = sample_output.Breakdown(self.arch.device)
        images = []
        os.makedirs(self.folder, exist_ok=True)
        with _training_rng_kept(self.arch.device), _no_grad(), sample_merge.merged(self.merge, timer), \
                sample_graph.patched(getattr(self.pipe, "unet", None), self.graphed):
            denoiser.eval()
            try:
                # A text encoder that trains its own LoRA (SDXL) encodes the prompts again, as it is now.
                with _eager():
                    encoded = _encode_sdxl(self.pipe, self.prompts, self.arch.device, self.kwargs["guidance_scale"]) if self.cfg.train_text_encoder else self.embeds
                for pi, (prompt, embeds) in enumerate(zip(self.prompts, encoded)):
                    for seed in self.seeds:
                        images.append(self._compiled_or_eager(step, pi, prompt, embeds, seed, timer, writer))
            finally:
                denoiser.train(was_training)
        replays = f"; {self.graphed.replays} UNet graph replays so far" if self.graphed is not None else ""
        emit({"type": "log", "level": "info", "message": f"samples at step {step}: {len(images)} images in {time.time() - started:.2f} s "
                                                         f"({timer.text(queued=writer is not None)}){replays}"})
        return images

    def _compiled_or_eager(self, step: int, pi: int, prompt: str, embeds: dict, seed: int, timer, writer) -> dict:
        """One image: through the compiled blocks with sample_merge "compiled", else (and for the rest of the
        run once a compiled one fails: the same image again, eagerly, with one coded warning) eagerly."""
        if self.compiled:
            try:
                return self._one(step, pi, prompt, embeds, seed, timer, writer)
            except Exception as e:  # noqa: BLE001 - a sample the compiler cannot take: render it eagerly
                if is_oom(e):
                    raise
                self.compiled = False
                warning(f"in-training samples through the compiled blocks failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); "
                        "rendering them eagerly for the rest of the run", code=COMPILE_FALLBACK)
        with _eager():
            return self._one(step, pi, prompt, embeds, seed, timer, writer)

    def _one(self, step: int, pi: int, prompt: str, embeds: dict, seed: int, timer, writer) -> dict:
        import torch

        # A CPU generator: the same seed draws the same starting noise on every device.
        generator = torch.Generator(device="cpu").manual_seed(seed)
        kwargs = {k: v for k, v in embeds.items() if not k.startswith("_")}

        def call(output_type: str):
            return self.pipe(prompt=None, generator=generator, output_type=output_type, **kwargs, **self.kwargs)

        with _encoded(self.pipe, embeds):
            image = sample_output.render_pixels(self.pipe, call, timer)
        path = os.path.join(self.folder, f"step-{step:06d}-p{pi}-s{seed}.png")
        record = {"step": step, "path": os.path.abspath(path), "prompt": prompt, "seed": seed}

        def announce() -> None:  # once the file is on disk (on the writer thread, with one)
            self.rendered.append(record)
            emit({"type": "sample", **record})

        with timer.part("png"):
            sample_output.save(image, path, announce, writer)
        return record


# How each arch's sample prompts are encoded (sdxl takes no max_sequence_length).
ENCODERS = {"flux1": _encode_flux1, "flux2-klein": _encode_flux2_klein, "zimage": _encode_zimage, "qwen-image": _encode_qwen_image}
# The pipeline argument the guidance goes in (Qwen-Image: true CFG; its guidance_scale is for guidance-distilled checkpoints).
GUIDANCE_ARG = {"qwen-image": "true_cfg_scale"}
# The arches whose sample prompts this module encodes: core's table lists them (sampleArches) and
# test_sync.py holds the two equal; core compiles no samples for others (W_SAMPLES_UNSUPPORTED).
SAMPLE_ARCHES = ("sdxl", *ENCODERS)


def prepare(cfg: Config, pipe, arch, merge_mode: Optional[str] = None) -> Optional[SampleRenderer]:
    """The renderer with its prompts encoded (call while the text encoders are loaded), or None
    when the request asks for no samples. `merge_mode`: the sample_merge the run applies (default the request's)."""
    import torch

    s = cfg.samples
    if not s:
        return None
    with torch.no_grad():
        guidance = float(s["guidance_scale"])
        if cfg.arch == "sdxl":
            embeds = _encode_sdxl(pipe, s["prompts"], arch.device, guidance)
        else:  # core compiles samples only for SAMPLE_ARCHES
            embeds = ENCODERS[cfg.arch](pipe, s["prompts"], arch.device, guidance, cfg.max_sequence_length)
    return SampleRenderer(cfg, pipe, arch, embeds, merge_mode)


@contextlib.contextmanager
def _training_rng_kept(device):
    """The global torch (CPU and this CUDA device) and Python RNG states as training left them."""
    import torch

    state = random.getstate()
    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(state)


@contextlib.contextmanager
def _encoded(pipe, embeds: dict):
    """FLUX.1's pipeline makes text_ids in the text encoder's dtype, else the transformer's, which
    an fp8-held base reports as float8: while sampling it returns the encodings made at load."""
    if "_text_ids" not in embeds:
        yield
        return
    encoded = (embeds["prompt_embeds"], embeds["pooled_prompt_embeds"], embeds["_text_ids"])
    pipe.encode_prompt = lambda *args, **kwargs: encoded
    try:
        yield
    finally:
        del pipe.encode_prompt


@contextlib.contextmanager
def _eager():
    """Compiled blocks run eagerly while sampling (no recompiles for no_grad/eval, no graph)."""
    import torch

    set_stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
    if set_stance is None:
        yield
        return
    with set_stance("force_eager"):
        yield


@contextlib.contextmanager
def _no_grad():
    import torch

    with torch.no_grad():
        yield


def summary(renderer: Optional[SampleRenderer]) -> list[dict[str, Any]]:
    return list(renderer.rendered) if renderer else []
