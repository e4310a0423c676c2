"""`embed`: image embeddings that confirm near-duplicate pairs in dataset prep (dedupe.ts).

Request: {model?, kind?: "clip" | "dino", device?, images: [paths]}. `model` is a Hugging Face id
or local folder: a CLIP model (kind "clip", openai/clip-vit-large-patch14 by default, the one
score.py uses) or a DINOv2 (kind "dino", e.g. facebook/dinov2-base, score.py's dino_model).
Result: {model, kind, dim, embeddings: {path: [float, ...]}}, each L2-normalised, so the
TypeScript side's cosine is a dot product. It reuses score.py's loader and cache unchanged.
"""

from __future__ import annotations

from .protocol import WorkerError, emit, phase, require
from .score import BATCH, DEFAULT_MODEL, _device, _Embedder


def run(request: dict) -> dict:
    images = require(request, "images", list)
    if not all(isinstance(p, str) for p in images):
        raise WorkerError("E_USAGE", "'images' must be a list of paths")
    kind = request.get("kind") or "clip"
    if kind not in ("clip", "dino"):
        raise WorkerError("E_USAGE", f"'kind' must be clip or dino, got {kind!r}")
    model = request.get("model") or DEFAULT_MODEL
    device = _device(request)
    phase("embed", f"{len(images)} images with {model} ({kind}) on {device}")
    embedder = _Embedder(kind, model, device)
    out: dict = {}
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        feats = embedder.images(chunk)
        for path, f in zip(chunk, feats):
            out[path] = [round(float(x), 6) for x in f.tolist()]
        emit({"type": "progress", "task": "embed", "current": min(start + BATCH, len(images)), "total": len(images)})
    dim = len(next(iter(out.values()))) if out else 0
    return {"model": model, "kind": kind, "dim": dim, "embeddings": out}
