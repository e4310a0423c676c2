"""`version`: the worker's own version and the versions of the libraries it trains with."""

from __future__ import annotations

import importlib.metadata as md
import platform


def run(request: dict) -> dict:
    versions = {}
    for name in ("torch", "diffusers", "peft", "transformers", "accelerate", "safetensors"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    cuda = None
    if request.get("cuda", True):
        try:
            import torch

            count = torch.cuda.device_count()
            cuda = {
                "available": torch.cuda.is_available(),
                "devices": [torch.cuda.get_device_name(i) for i in range(count)],
                # The torch build: the CUDA version it was compiled for (None for a CPU build).
                "build": torch.version.cuda,
                "device_info": [_device_info(torch, i) for i in range(count)],
            }
        except Exception as e:  # noqa: BLE001
            cuda = {"available": False, "error": str(e)}
    from . import __version__

    return {"worker": __version__, "python": platform.python_version(), "packages": versions, "cuda": cuda}


def _device_info(torch, index: int) -> dict:
    props = torch.cuda.get_device_properties(index)
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
    }
