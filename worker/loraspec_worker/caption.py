"""`caption`: captions for a list of images from a vision-language model, loaded once, batched.

Request:
  images          ["/abs/a.png", ...]                        (required)
  model           HF id or local folder (default florence-community/Florence-2-base)
  task            Florence-2 task token (default "<MORE_DETAILED_CAPTION>"); other VLMs get `prompt`
  prompt          instruction for chat VLMs (style/target prompt from loraspec's core)
  batch_size      images per forward pass (default 4)
  max_new_tokens  default 128;  min_new_tokens default 0;  num_beams default 3
  device          auto | cpu | cuda[:n] (default auto);  precision  auto | bf16 | fp16 | fp32
Events: phase, progress (task "caption"), warning per unreadable image;
done {captions: {path: text}, errors: {path: message}, model}.
The trigger word is NOT added here: loraspec's core places it (one rule, one place).
"""

from __future__ import annotations

import os

from .hub import local_files_only
from .images import open_rgb
from .protocol import WorkerError, emit, is_oom, log, phase, require, warning

DEFAULT_MODEL = "florence-community/Florence-2-base"
DEFAULT_TASK = "<MORE_DETAILED_CAPTION>"


def _device_and_dtype(device: str, precision: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "fp32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(precision)
    if dtype is None:
        raise WorkerError("E_USAGE", f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    return device, dtype


def _load(model_id: str, device: str, dtype):
    # Offline, a model that is not cached fails here in seconds, not after the hub's retries (hub.py).
    local = local_files_only(model_id, "captioning")
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    try:
        config = AutoConfig.from_pretrained(model_id, local_files_only=local)
        processor = AutoProcessor.from_pretrained(model_id, local_files_only=local)
        model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=dtype, local_files_only=local)
    except (OSError, ValueError) as e:
        raise WorkerError(
            "E_FILE_NOT_FOUND",
            f"cannot load the captioning model {model_id!r}: {str(e).splitlines()[0][:300]}",
            hint="pass a Hugging Face id of a vision-language model (default florence-community/Florence-2-base) or a local folder with its files",
        ) from None
    model.to(device).eval()
    return config.model_type, processor, model


def _open_image(path: str):
    """The image as the trainer sees it (images.open_rgb: upright, transparent pixels on core's colour, RGB)."""
    return open_rgb(path)


def _inputs(kind: str, processor, images, task: str, prompt: str):
    if kind == "florence2":
        return processor(text=[task] * len(images), images=images, return_tensors="pt")
    # Chat VLMs: one user turn with the image and the instruction, through the model's own template.
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}] for _ in images]
    texts = [processor.apply_chat_template(m, add_generation_prompt=True) for m in messages]
    return processor(text=texts, images=[[img] for img in images], return_tensors="pt", padding=True)


def _generate(kind, processor, model, images, request, device, dtype) -> list[str]:
    import torch

    inputs = _inputs(kind, processor, images, request["task"], request["prompt"])
    inputs = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=int(request["max_new_tokens"]),
            min_new_tokens=int(request["min_new_tokens"]),
            num_beams=int(request["num_beams"]),
            do_sample=False,
        )
    if kind != "florence2" and not model.config.is_encoder_decoder:
        out = out[:, inputs["input_ids"].shape[1] :]  # decoder-only models echo the prompt
    return [" ".join(t.split()) for t in processor.batch_decode(out, skip_special_tokens=True)]


def run(request: dict) -> dict:
    images = require(request, "images", list)
    if not all(isinstance(p, str) for p in images):
        raise WorkerError("E_USAGE", "'images' must be a list of file paths")
    request = {
        "model": DEFAULT_MODEL,
        "task": DEFAULT_TASK,
        "prompt": "Describe this image in one sentence.",
        "batch_size": 4,
        "max_new_tokens": 128,
        "min_new_tokens": 0,
        "num_beams": 3,
        "device": "auto",
        "precision": "auto",
        **{k: v for k, v in request.items() if v is not None},
    }
    batch_size = int(request["batch_size"])
    if batch_size < 1:
        raise WorkerError("E_USAGE", "'batch_size' must be at least 1")
    device, dtype = _device_and_dtype(str(request["device"]), str(request["precision"]))

    captions: dict[str, str] = {}
    errors: dict[str, str] = {}
    readable: list[tuple[str, object]] = []
    for path in images:
        try:
            readable.append((path, _open_image(path)))
        except Exception as e:  # noqa: BLE001 - one bad file never stops the others
            errors[path] = f"unreadable image: {type(e).__name__}: {str(e)[:200]}"
            warning(f"{os.path.basename(path)}: {errors[path]}", code="E_IMAGE_UNREADABLE")
    phase("caption", f"{len(readable)} image(s) with {request['model']} on {device}")
    if not readable:
        return {"captions": captions, "errors": errors, "model": request["model"]}

    kind, processor, model = _load(str(request["model"]), device, dtype)
    done = len(errors)
    total = len(images)
    emit({"type": "progress", "task": "caption", "current": done, "total": total})
    for start in range(0, len(readable), batch_size):
        batch = readable[start : start + batch_size]
        try:
            texts = _generate(kind, processor, model, [img for _, img in batch], request, device, dtype)
            results = list(zip([p for p, _ in batch], texts))
        except Exception as e:  # noqa: BLE001
            if is_oom(e) and len(batch) == 1:
                raise
            # A batch failed (one odd image, or memory): caption its images one by one.
            log(f"batch of {len(batch)} failed ({type(e).__name__}: {e}); retrying one at a time", "info")
            results = []
            for path, img in batch:
                try:
                    results.append((path, _generate(kind, processor, model, [img], request, device, dtype)[0]))
                except Exception as single:  # noqa: BLE001
                    if is_oom(single):
                        raise
                    errors[path] = f"{type(single).__name__}: {str(single)[:300]}"
        for path, text in results:
            if text.strip():
                captions[path] = text.strip()
            else:
                errors[path] = "the model returned an empty caption"
        done += len(batch)
        emit({"type": "progress", "task": "caption", "current": done, "total": total})
    return {"captions": captions, "errors": errors, "model": request["model"]}
