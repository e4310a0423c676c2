"""`sample`: images from a base model with LoRAs stacked at per-adapter weights.

Request:
  base        HF id, local diffusers folder, or single file (then `arch` picks the pipeline)
  arch        optional: sdxl | flux1 | flux2-klein (needed for single files)
  loras       [{"path": "a.safetensors", "weight": 0.8, "name": "a"}]   (may be empty)
  prompts     ["a photo of txcl", ...];  seeds: [1, 2, 3]
  out_dir     PNGs go here, named by `files`
  files       optional: one file name per prompt x seed, in that order (the CLI's sample-outputs.ts names
              them, and refuses to replace existing ones); without it <prompt index, 2 digits>-<seed>.png
  steps, guidance_scale, width, height, negative_prompt, max_sequence_length, precision, device
(A validation rubric, where each image names its own adapters and weights, is `render-jobs`.)
Events: phase, progress (task "sample"), sample {path, prompt, seed}; done {images: [...]}.
"""

from __future__ import annotations

import os
import re
import time

from .train import readahead
from .train.network import load_adapter_file
from .protocol import WorkerError, emit, log, phase, require


def _adapter_name(path: str, index: int) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", stem)[:40]


def load_base(base: str, arch: str | None, dtype):
    from diffusers import DiffusionPipeline

    if os.path.isfile(base) or arch:
        from .train import load_pipeline

        if not arch:
            raise WorkerError("E_USAGE", "a single-file base needs 'arch'", hint="sdxl, flux1 or flux2-klein")
        return load_pipeline(base, arch, dtype)
    try:
        return DiffusionPipeline.from_pretrained(base, torch_dtype=dtype)
    except OSError as e:
        raise WorkerError("E_FILE_NOT_FOUND", f"cannot load base model '{base}': {str(e).splitlines()[0]}") from None


def apply_loras(pipe, loras: list[dict]) -> list[str]:
    """load_lora_weights + set_adapters; returns the adapter names in order."""
    names, weights = [], []
    for i, lora in enumerate(loras):
        path = lora.get("path")
        name = lora.get("name") or _adapter_name(path, i)
        load_lora_file(pipe, path, name)
        names.append(name)
        weights.append(float(lora.get("weight", 1.0)))
    if names:
        pipe.set_adapters(names, adapter_weights=weights)
    return names


def _save(image, path: str) -> None:
    tmp = path + ".tmp.png"
    image.save(tmp)
    os.replace(tmp, path)


def load_lora_file(pipe, path: str, name: str) -> None:
    """load_lora_weights with the errors a user can act on (missing file, wrong base)."""
    if not path or not os.path.exists(path):
        raise WorkerError("E_FILE_NOT_FOUND", f"LoRA file not found: {path}")
    try:
        load_adapter_file(pipe, path, name)  # LoRA, DoRA, LoKr or LoHa (train/network.py)
    except (ValueError, KeyError, RuntimeError, TypeError) as e:
        raise WorkerError("E_LORA_FORMAT_UNKNOWN", f"{path} does not load into this base: {str(e).splitlines()[0][:300]}") from None


def generation_kwargs(request: dict, pipe) -> dict:
    """The pipeline call's settings from the request; a setting `pipe`'s __call__ names no parameter for
    (max_sequence_length on SDXL: CLIP only) is refused with E_USAGE. (SDXL's __call__ takes **kwargs for deprecated
    callback arguments and drops anything else silently: only the named parameters are used.)"""
    import inspect

    kwargs = {}
    for key in ("guidance_scale", "width", "height", "negative_prompt", "max_sequence_length"):
        if request.get(key) is not None:
            kwargs[key] = request[key]
    kwargs["num_inference_steps"] = int(request.get("steps", 28))
    takes = inspect.signature(pipe.__call__).parameters
    for key in kwargs:
        if key not in takes:
            raise WorkerError("E_USAGE", f"{key}: {type(pipe).__name__} takes no such setting", hint=f"leave {key} out for this base")
    return kwargs


def load_for_sampling(request: dict):
    """The base pipeline on the request's device and dtype, progress bars off; returns (pipe, device)."""
    import torch

    base = require(request, "base", str)
    device = torch.device(request.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.float32 if device.type == "cpu" else {"fp16": torch.float16, "fp32": torch.float32}.get(request.get("precision", "bf16"), torch.bfloat16)
    if device.type == "cuda":
        from .train import disable_cudnn_sdpa

        disable_cudnn_sdpa()
    phase("load", f"loading {base}")
    pipe = load_base(base, request.get("arch"), dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    return pipe, device


def _file_names(files, count: int):
    """The request's file names (plain .png names inside out_dir, one per prompt x seed), or None."""
    if files is None:
        return None
    ok = isinstance(files, list) and len(files) == count and all(
        isinstance(f, str) and f.endswith(".png") and f == os.path.basename(f) and f not in ("", ".png") and "\\" not in f for f in files)
    if not ok:
        raise WorkerError("E_USAGE", f"files: {count} plain .png file names (one per prompt x seed, no folders) expected")
    return files


def run(request: dict) -> dict:
    reading = readahead.for_request(request)  # the weights come off the disk while torch imports
    import torch

    prompts = require(request, "prompts", list)
    out_dir = require(request, "out_dir", str)
    seeds = request.get("seeds") or [0]
    files = _file_names(request.get("files"), len(prompts) * len(seeds))
    pipe, _ = load_for_sampling(request)
    readahead.stop(reading)
    kwargs = generation_kwargs(request, pipe)

    names = apply_loras(pipe, request.get("loras") or [])
    if names:
        log(f"adapters: {list(zip(names, [l.get('weight', 1.0) for l in request['loras']]))}")

    os.makedirs(out_dir, exist_ok=True)

    phase("sample", f"{len(prompts)} prompts x {len(seeds)} seeds")
    total = len(prompts) * len(seeds)
    images, started, n = [], time.time(), 0
    for pi, prompt in enumerate(prompts):
        for seed in seeds:
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
            image = pipe(prompt=prompt, generator=generator, **kwargs).images[0]
            path = os.path.join(out_dir, files[n] if files else f"{pi:02d}-{int(seed)}.png")
            _save(image, path)
            n += 1
            emit({"type": "sample", "path": os.path.abspath(path), "prompt": prompt, "seed": int(seed)})
            rate = n / max(1e-9, time.time() - started)
            emit({"type": "progress", "task": "sample", "current": n, "total": total, "rate": rate, "eta": (total - n) / rate})
            images.append({"path": os.path.abspath(path), "prompt": prompt, "seed": int(seed)})
    return {"images": images, "adapters": names}
