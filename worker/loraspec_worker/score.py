"""`score`: embeds validation images and measures the rubric (packages/core/src/validate/score-request.ts).

Request: {model, dino_model?, device?, reference: [paths], trigger: [{id, pairs, base_pairs}],
sets: [{id, images, texts?}], stack: [{id, items: [{stack, base, alone: {name: path}}]}]}.
`model` is a CLIP model (Hugging Face id or local folder; openai/clip-vit-large-patch14 by
default), `dino_model` an optional DINOv2. All similarities are cosine similarities of
L2-normalised embeddings (DreamBooth's CLIP-I / DINO / CLIP-T measures); distances are 1 - cosine.
Verdicts are not made here: the TypeScript side compares these numbers with threshold records.
"""

from __future__ import annotations

import os
from typing import Optional

from .hub import local_files_only
from .images import open_rgb
from .protocol import WorkerError, emit, log, phase, require

DEFAULT_MODEL = "openai/clip-vit-large-patch14"
BATCH = 16


def _device(request: dict) -> str:
    import torch

    wanted = request.get("device")
    if wanted:
        return str(wanted)
    return "cuda" if torch.cuda.is_available() else "cpu"


def _open(path: str):
    """The image as the trainer sees it (images.open_rgb: upright, transparent pixels on core's colour, RGB): the
    embedding prep's duplicate check and validate's scores read is of the picture that trains."""
    if not os.path.isfile(path):
        raise WorkerError("E_FILE_NOT_FOUND", f"image not found: {path}")
    try:
        return open_rgb(path)
    except Exception as e:  # noqa: BLE001 - any decoder failure is the same user problem
        raise WorkerError("E_IMAGE_UNREADABLE", f"cannot read image {path}: {e}") from None


class _Embedder:
    """Loads a model once and caches each image's normalised embedding by path."""

    def __init__(self, kind: str, name: str, device: str):
        # Offline, a model that is not cached fails here in seconds (before torch loads), not after the hub's retries (hub.py).
        local = local_files_only(name, kind)
        import torch
        from transformers import AutoImageProcessor, AutoModel, CLIPModel, CLIPProcessor

        self.kind = kind
        self.name = name
        self.device = device
        self.cache: dict = {}
        try:
            if kind == "clip":
                self.model = CLIPModel.from_pretrained(name, local_files_only=local).to(device).eval()
                self.processor = CLIPProcessor.from_pretrained(name, local_files_only=local)
            else:
                self.model = AutoModel.from_pretrained(name, local_files_only=local).to(device).eval()
                self.processor = AutoImageProcessor.from_pretrained(name, local_files_only=local)
        except OSError as e:
            raise WorkerError(
                "E_FILE_NOT_FOUND",
                f"cannot load the {kind} model '{name}': {str(e).splitlines()[0][:300]}",
                hint="pass a Hugging Face id you can download or a local folder with the model and its processor",
            ) from None
        self.torch = torch

    def _image_features(self, images):
        torch = self.torch
        if self.kind == "clip":
            inputs = self.processor(images=images, return_tensors="pt").to(self.device)
            out = self.model.get_image_features(**inputs)
            feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        else:
            inputs = self.processor(images=images, return_tensors="pt").to(self.device)
            out = self.model(**inputs)
            # DINOv2's pooler output is the layer-normed CLS token, the embedding DINO scores use.
            feats = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state[:, 0]
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def images(self, paths: list[str]):
        torch = self.torch
        todo = [p for p in dict.fromkeys(paths) if p not in self.cache]
        with torch.no_grad():
            for i in range(0, len(todo), BATCH):
                chunk = todo[i : i + BATCH]
                feats = self._image_features([_open(p) for p in chunk]).cpu()
                for p, f in zip(chunk, feats):
                    self.cache[p] = f
        if not paths:
            return torch.zeros((0, 1))
        return torch.stack([self.cache[p] for p in paths])

    def texts(self, texts: list[str]):
        torch = self.torch
        with torch.no_grad():
            inputs = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True).to(self.device)
            out = self.model.get_text_features(**inputs)
            feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu()


def _image_embedder(request: dict, model: str, device: str):
    """CLIP, or the toy world's judge (`embedder: {kind: "toy-judge", path}`, or `model` naming a
    judge folder): same interface, see worker/toyworld/embedder.py (the toy world is not part of the
    shipped worker package: runWorker puts worker/ on PYTHONPATH)."""
    spec = request.get("embedder") or {}
    if spec.get("kind") != "toy-judge" and not os.path.exists(os.path.join(model, "judge.json")):
        return _Embedder("clip", model, device)
    try:
        from toyworld.embedder import ToyJudgeEmbedder, is_judge_folder
    except ImportError:
        raise WorkerError("E_NOT_SUPPORTED", "the toy-judge embedder needs the toy world (worker/toyworld) on PYTHONPATH",
                          hint="run the worker through loraspec (it sets PYTHONPATH), or PYTHONPATH=<repo>/worker") from None

    if spec.get("kind") == "toy-judge":
        path = require(spec, "path", str)
        if not is_judge_folder(path):
            raise WorkerError("E_FILE_NOT_FOUND", f"no toy judge in {path} (judge.safetensors + judge.json)")
        return ToyJudgeEmbedder(path, device)
    if is_judge_folder(model):
        return ToyJudgeEmbedder(model, device)
    return _Embedder("clip", model, device)


def _mean(values) -> Optional[float]:
    values = list(values)
    return float(sum(values) / len(values)) if values else None


def _pairwise_mean_distance(e) -> float:
    n = e.shape[0]
    if n < 2:
        return 0.0
    sims = e @ e.T
    off = sims.sum() - sims.diagonal().sum()
    return float(1.0 - off / (n * (n - 1)))


def _reference_stats(ref) -> dict:
    """Mean pairwise similarity of the training images and each one's nearest-neighbour similarity."""
    import torch

    n = ref.shape[0]
    if n < 2:
        return {}
    sims = ref @ ref.T
    mean = float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))
    masked = sims - 2 * torch.eye(n)
    nn = float(masked.max(dim=1).values.mean())
    return {"pairwise": mean, "nearest": nn}


def _set_scores(emb: _Embedder, dino: Optional[_Embedder], ref_clip, ref_dino, ref_stats: dict, spec: dict) -> dict:
    import torch

    images = spec.get("images") or []
    if not images:
        return {"count": 0, "diversity": 0.0}
    e = emb.images(images)
    out: dict = {"count": len(images), "diversity": _pairwise_mean_distance(e)}
    if ref_clip is not None and ref_clip.shape[0] > 0:
        sims = e @ ref_clip.T  # images x references
        out["fidelity_clip"] = float(sims.mean())
        nearest = sims.argmax(dim=1).tolist()
        out["collapse_share"] = max(nearest.count(i) for i in set(nearest)) / len(nearest)
        if "nearest" in ref_stats:
            out["near_duplicate_share"] = float((sims.max(dim=1).values >= ref_stats["nearest"]).float().mean())
    if dino is not None and ref_dino is not None and ref_dino.shape[0] > 0:
        out["fidelity_dino"] = float((dino.images(images) @ ref_dino.T).mean())
    texts = spec.get("texts")
    if texts:
        if len(texts) != len(images):
            raise WorkerError("E_USAGE", f"set '{spec.get('id')}': {len(texts)} texts for {len(images)} images")
        t = emb.texts(texts)
        per = (e * t).sum(dim=1)
        out["clip_t"] = float(per.mean())
        paired = spec.get("paired")
        if paired:
            # Per image: its CLIP-T minus that of its paired image (the base model's image of the
            # same prompt and seed), so seed-to-seed variation cancels out of the comparison.
            if len(paired) != len(images):
                raise WorkerError("E_USAGE", f"set '{spec.get('id')}': {len(paired)} paired images for {len(images)} images")
            out["clip_t_delta"] = [float(v) for v in per - (emb.images(paired) * t).sum(dim=1)]
        candidates = spec.get("candidates")
        if candidates:
            # Zero-shot: is each image's own text the candidate it matches best (a scene drawn as
            # another scene of the rubric, e.g. a training background, matches that one instead)?
            missing = [x for x in texts if x not in candidates]
            if missing:
                raise WorkerError("E_USAGE", f"set '{spec.get('id')}': text '{missing[0]}' is not among its candidates")
            c = emb.texts(candidates)
            own = torch.tensor([candidates.index(x) for x in texts])
            out["own_text_best"] = [bool(v) for v in (e @ c.T).argmax(dim=1) == own]
            if paired:
                out["paired_own_text_best"] = [bool(v) for v in (emb.images(paired) @ c.T).argmax(dim=1) == own]
    return out


def _stack_scores(emb: _Embedder, spec: dict) -> dict:
    """How much of each adapter's own shift (alone - base) survives in the stack (stack - base)."""
    retention: dict = {}
    shift: dict = {}
    per: dict = {}
    for item in spec.get("items") or []:
        base = emb.images([item["base"]])[0]
        s = emb.images([item["stack"]])[0] - base
        for name, path in (item.get("alone") or {}).items():
            v = emb.images([path])[0] - base
            norm2 = float(v @ v)
            per.setdefault(name, []).append((float(s @ v), norm2))
    for name, pairs in per.items():
        shift[name] = _mean(n ** 0.5 for _, n in pairs)
        usable = [(d, n) for d, n in pairs if n > 1e-8]
        # An adapter that changes nothing alone has no shift to retain: report None, not 0/0.
        retention[name] = _mean(d / n for d, n in usable) if usable else None
    return {"retention": retention, "shift": shift}


def run(request: dict) -> dict:
    model = request.get("model") or DEFAULT_MODEL
    reference = list(request.get("reference") or [])
    trigger = request.get("trigger") or []
    sets = request.get("sets") or []
    stacks = request.get("stack") or []
    if not isinstance(reference, list) or not isinstance(sets, list):
        raise WorkerError("E_USAGE", "'reference' and 'sets' must be lists")
    device = _device(request)
    phase("score", f"embedding with {model} on {device}")
    clip = _image_embedder(request, model, device)
    dino = _Embedder("dino", request["dino_model"], device) if request.get("dino_model") else None

    total = len(reference) + len(trigger) + len(sets) + len(stacks)
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        emit({"type": "progress", "task": "score", "current": done, "total": total, "message": message})

    ref_clip = clip.images(reference) if reference else None
    ref_dino = dino.images(reference) if (dino and reference) else None
    for _ in reference:
        tick("reference")
    ref_stats = _reference_stats(ref_clip) if ref_clip is not None else {}
    ref_out: dict = {"count": len(reference)}
    if "pairwise" in ref_stats:
        ref_out["pairwise_clip"] = ref_stats["pairwise"]
        ref_out["nearest_clip"] = ref_stats["nearest"]
    if ref_dino is not None and len(reference) >= 2:
        ref_out["pairwise_dino"] = _reference_stats(ref_dino)["pairwise"]

    trig_out: dict = {}
    for spec in trigger:
        def dist(pairs):
            if not pairs:
                return 0.0
            a = clip.images([p[0] for p in pairs])
            b = clip.images([p[1] for p in pairs])
            return float((1.0 - (a * b).sum(dim=1)).mean())

        d = dist(require(spec, "pairs", list))
        bd = dist(spec.get("base_pairs") or [])
        trig_out[spec["id"]] = {"distance": d, "base_distance": bd, "effect": d - bd}
        tick(f"trigger {spec['id']}")

    set_out: dict = {}
    for spec in sets:
        set_out[require(spec, "id", str)] = _set_scores(clip, dino, ref_clip, ref_dino, ref_stats, spec)
        tick(f"set {spec['id']}")

    stack_out: dict = {}
    for spec in stacks:
        stack_out[require(spec, "id", str)] = _stack_scores(clip, spec)
        tick(f"stack {spec['id']}")

    log(f"scored {len(clip.cache)} images with {model}")
    embedder = {"clip": clip.name}
    if dino:
        embedder["dino"] = dino.name
    return {"embedder": embedder, "reference": ref_out, "trigger": trig_out, "sets": set_out, "stack": stack_out}
