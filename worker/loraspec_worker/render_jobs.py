"""`render-jobs`: the validation rubric's images in one process (packages/engine/src/samplers/worker-sampler.ts).

Unlike `sample` (one adapter set, prompts x seeds), each job names its own prompt, seed and
adapters with weights, so a whole rubric (trigger on/off, sweep weights, stack, base images)
renders with one base load: every LoRA is loaded once with `load_lora_weights(adapter_name=...)`
and each job switches with `set_adapters(names, weights)`, or `disable_lora()` for base images.

Request:
  base, arch, precision, device    as in `sample`
  loras    [{"name": "me", "path": "me.safetensors"}]  (diffusers or Kohya format)
  jobs     [{"id": "0001-w1-trigger-on", "prompt": "...", "seed": 1, "adapters": [{"name": "me", "weight": 1.0}]}]
  out_dir  PNGs go here as <id>.png
  steps, guidance_scale, width, height, negative_prompt, max_sequence_length
Events: phase, progress (task "sample"), sample {path, prompt, seed}; done {images: [{id, path}]}.
"""

from __future__ import annotations

import os
import re
import time

from .protocol import WorkerError, emit, log, phase, require
from .sample import generation_kwargs, load_for_sampling, load_lora_file
from .train import readahead

_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def _load_loras(pipe, loras: list[dict]) -> set[str]:
    names: set[str] = set()
    for lora in loras:
        name = require(lora, "name", str)
        if name in names:
            raise WorkerError("E_USAGE", f"adapter name '{name}' is used twice")
        load_lora_file(pipe, require(lora, "path", str), name)
        names.add(name)
    return names


def run(request: dict) -> dict:
    reading = readahead.for_request(request)  # the weights come off the disk while torch imports
    import torch

    jobs = require(request, "jobs", list)
    out_dir = require(request, "out_dir", str)
    loras = request.get("loras") or []
    for job in jobs:
        if not _ID.match(str(job.get("id", ""))):
            raise WorkerError("E_USAGE", f"job id {job.get('id')!r} must be letters, digits, dot, dash or underscore")
    pipe, _ = load_for_sampling(request)
    readahead.stop(reading)
    loaded = _load_loras(pipe, loras)
    kwargs = generation_kwargs(request, pipe)

    os.makedirs(out_dir, exist_ok=True)
    phase("sample", f"{len(jobs)} images")
    images, started = [], time.time()
    lora_on = True
    for n, job in enumerate(jobs, start=1):
        adapters = job.get("adapters") or []
        unknown = [a.get("name") for a in adapters if a.get("name") not in loaded]
        if unknown:
            raise WorkerError("E_USAGE", f"job {job['id']} names adapters that were not loaded: {unknown}")
        if loaded:
            if adapters:
                if not lora_on:
                    pipe.enable_lora()
                    lora_on = True
                pipe.set_adapters([a["name"] for a in adapters], adapter_weights=[float(a.get("weight", 1.0)) for a in adapters])
            else:
                # Base images: the same pipeline with every LoRA switched off, not a second load.
                pipe.disable_lora()
                lora_on = False
        generator = torch.Generator(device="cpu").manual_seed(int(job.get("seed", 0)))
        image = pipe(prompt=require(job, "prompt", str), generator=generator, **kwargs).images[0]
        path = os.path.abspath(os.path.join(out_dir, f"{job['id']}.png"))
        tmp = path + ".tmp.png"
        image.save(tmp)
        os.replace(tmp, path)
        emit({"type": "sample", "path": path, "prompt": job["prompt"], "seed": int(job.get("seed", 0))})
        rate = n / max(1e-9, time.time() - started)
        emit({"type": "progress", "task": "sample", "current": n, "total": len(jobs), "rate": rate, "eta": (len(jobs) - n) / rate})
        images.append({"id": job["id"], "path": path})
    log(f"rendered {len(images)} images with adapters {sorted(loaded)}")
    return {"images": images}
