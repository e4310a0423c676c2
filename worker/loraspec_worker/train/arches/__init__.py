"""Per-architecture loss code; ARCH_CLASSES maps the request's arch to its class."""

from .base import Arch
from .flow import FlowArch, Flux1, Flux2Klein, QwenImage, ZImage
from .sdxl import SDXL

ARCH_CLASSES = {"sdxl": SDXL, "flux1": Flux1, "flux2-klein": Flux2Klein, "zimage": ZImage, "qwen-image": QwenImage}

__all__ = ["ARCH_CLASSES", "Arch", "FlowArch", "Flux1", "Flux2Klein", "QwenImage", "SDXL", "ZImage"]
