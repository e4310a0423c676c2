"""`merge`: merges LoRAs in delta space with torch and re-factors each module to rank R by SVD.

Request:
  {"inputs": [{"path": "a.safetensors", "weight": 0.5}, ...],   # kohya layout: <stem>.lora_down.weight,
                                                                # <stem>.lora_up.weight, optional <stem>.alpha
   "method": "svd" | "ties" | "dare" | "linear",
   "rank": 16 | null,            # default: the largest input rank
   "density": 0.7,               # ties/dare: share of entries kept
   "seed": 0,                    # dare: the Bernoulli masks are seeded
   "output": "out.safetensors",  # same layout, alpha = rank (scale 1)
   "dtype": "F32" | "BF16" | "F16",
   "device": "auto" | "cpu" | "cuda"}

Per module, with delta_i = (alpha_i / r_i) * up_i @ down_i (conv flattened; a module missing from
an input counts as zero), in float32 (float64 on CPU for the SVD):
  svd:    M = sum_i w_i delta_i
  ties:   trim each delta_i to its top int(density * numel) entries by |value|; elect the sign of
          sum_i trimmed_i (peft "total"); M = sum_i w_i trimmed_i [sign agrees] / max(1, count agreeing)
          (peft `ties_svd` semantics: lora-formats.md §3a)
  dare:   delta_i * Bernoulli(density) / density (seeded), then M = sum_i w_i masked_i (peft `dare_linear_svd`)
  linear: peft `linear` on the factors (equal ranks required): down = sum sign(c_i) sqrt|c_i| down_i,
          up = sum sqrt|c_i| up_i with c_i = w_i * alpha_i / r_i. Not delta-exact (cross terms): lossy, as peft.
Then U, S, Vh = svd(M); up = U[:, :R] * S[:R], down = Vh[:R], alpha = R. (svd never forms M: it
factors the stacked B and A with thin QRs and takes the SVD of the small core; same result.)
"""

from __future__ import annotations

import math
import os
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .protocol import WorkerError, emit

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
SUFFIX_DOWN = ".lora_down.weight"
SUFFIX_UP = ".lora_up.weight"


def _load(path: str) -> dict:
    if not os.path.exists(path):
        raise WorkerError("E_FILE_NOT_FOUND", f"no such file: {path}")
    modules: dict = {}
    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        for k in keys:
            if k.endswith(SUFFIX_DOWN):
                stem = k[: -len(SUFFIX_DOWN)]
                if stem + SUFFIX_UP not in keys:
                    raise WorkerError("E_LORA_UNUSED_KEYS", f"{k} has no matching lora_up in {path}")
                down = f.get_tensor(k).to(torch.float32)
                up = f.get_tensor(stem + SUFFIX_UP).to(torch.float32)
                alpha = float(f.get_tensor(stem + ".alpha").item()) if stem + ".alpha" in keys else float(down.shape[0])
                modules[stem] = (down, up, alpha)
        used = {s + sfx for s in modules for sfx in (SUFFIX_DOWN, SUFFIX_UP, ".alpha")}
        unused = sorted(keys - used)
        if unused:
            raise WorkerError("E_LORA_UNUSED_KEYS", f"{len(unused)} key(s) in {path} are not LoRA down/up/alpha: {', '.join(unused[:8])}")
    return modules


def _delta(down: torch.Tensor, up: torch.Tensor, alpha: float, device, dtype) -> torch.Tensor:
    r = down.shape[0]
    scale = 1.0 if alpha == 0 else alpha / r
    return scale * (up.reshape(up.shape[0], -1).to(device, dtype) @ down.reshape(r, -1).to(device, dtype))


def _trim(t: torch.Tensor, density: float) -> torch.Tensor:
    k = int(density * t.numel())
    if k <= 0:
        return torch.zeros_like(t)
    if k >= t.numel():
        return t
    # Keep exactly the top-k by magnitude, as peft's magnitude_based_pruning does.
    mask = torch.zeros(t.numel(), dtype=torch.bool, device=t.device)
    mask[t.abs().flatten().topk(k).indices] = True
    return t * mask.reshape(t.shape)


def _ties(deltas: list, weights: list, density: float) -> torch.Tensor:
    trimmed = torch.stack([_trim(d, density) for d in deltas])
    elected = torch.where(trimmed.sum(0) >= 0, 1.0, -1.0).to(trimmed.dtype)
    mask = (torch.sign(trimmed) == elected) & (trimmed != 0)
    w = torch.tensor(weights, dtype=trimmed.dtype, device=trimmed.device).view(-1, *([1] * (trimmed.dim() - 1)))
    summed = (w * trimmed * mask).sum(0)
    return summed / mask.sum(0).clamp(min=1).to(trimmed.dtype)


def _dare(deltas: list, weights: list, density: float, generator: torch.Generator) -> torch.Tensor:
    out = torch.zeros_like(deltas[0])
    for d, w in zip(deltas, weights):
        # Same draw as peft's random_pruning (bernoulli of a density-filled tensor), from a seeded
        # CPU generator so the masks do not depend on the device.
        keep = torch.bernoulli(torch.full(d.shape, density, dtype=d.dtype), generator=generator).to(d.device)
        out += w * (d * keep / density)
    return out


def run(request: dict) -> dict:
    inputs = request.get("inputs") or []
    method = request.get("method", "svd")
    if method not in ("svd", "ties", "dare", "linear"):
        raise WorkerError("E_USAGE", f"unknown merge method '{method}' (svd, ties, dare, linear)")
    if len(inputs) < 1:
        raise WorkerError("E_USAGE", "merge needs at least one input")
    density = float(request.get("density", 0.7))
    if method in ("ties", "dare") and not (0 < density <= 1):
        raise WorkerError("E_USAGE", f"density must be in (0, 1], got {density}")
    output = request.get("output")
    if not output:
        raise WorkerError("E_USAGE", "merge needs an output path")
    want = request.get("device", "auto")
    device = torch.device("cuda" if (want in ("auto", "cuda") and torch.cuda.is_available()) else "cpu")
    # fp64 on CPU keeps the SVD exact to ~1e-12; on a GPU fp32 is the fast path.
    work = torch.float64 if device.type == "cpu" else torch.float32
    out_dtype = DTYPES.get(request.get("dtype", "F32"))
    if out_dtype is None:
        raise WorkerError("E_USAGE", f"unknown dtype {request.get('dtype')}")
    seed = int(request.get("seed", 0))
    generator = torch.Generator(device="cpu").manual_seed(seed)

    loaded = [_load(i["path"]) for i in inputs]
    weights = [float(i.get("weight", 1.0)) for i in inputs]
    stems = sorted(set().union(*[set(m) for m in loaded]))
    ranks = [m[s][0].shape[0] for m in loaded for s in m]
    rank = int(request.get("rank") or max(ranks))
    emit({"type": "phase", "name": "merge", "message": f"{method} of {len(inputs)} LoRAs, {len(stems)} modules, rank {rank}, on {device.type}"})

    tensors: dict = {}
    started = time.time()
    for n, stem in enumerate(stems):
        present = [(m[stem], w) for m, w in zip(loaded, weights) if stem in m]
        down0, up0, _ = present[0][0]
        if method == "linear":
            if len({p[0][0].shape[0] for p in present}) != 1:
                raise WorkerError("E_LORA_SHAPE_MISMATCH", f"linear merge needs equal ranks ({stem}); use svd, ties or dare")
            down = sum(math.copysign(math.sqrt(abs(w * (a / d.shape[0] if a else 1.0))), w * (a or 1.0)) * d.to(device, work) for (d, u, a), w in present)
            up = sum(math.sqrt(abs(w * (a / d.shape[0] if a else 1.0))) * u.to(device, work) for (d, u, a), w in present)
            r = down.shape[0]
            tensors[stem + SUFFIX_DOWN] = down.to("cpu", out_dtype).contiguous()
            tensors[stem + SUFFIX_UP] = up.to("cpu", out_dtype).contiguous()
            tensors[stem + ".alpha"] = torch.tensor(float(r), dtype=out_dtype)
        elif method == "svd":
            # The weighted sum is B_cat @ A_cat (rank <= sum of ranks): SVD through two thin QRs and a
            # small core, exact and O(out * R^2) instead of a full out x in SVD.
            bs, as_ = [], []
            for (d, u, a), w in present:
                r = d.shape[0]
                scale = 1.0 if a == 0 else a / r
                bs.append((w * scale) * u.reshape(u.shape[0], -1).to(device, work))
                as_.append(d.reshape(r, -1).to(device, work))
            qb, rb = torch.linalg.qr(torch.cat(bs, dim=1))
            qa, ra = torch.linalg.qr(torch.cat(as_, dim=0).T)
            U, S, Vh = torch.linalg.svd(rb @ ra.T)
            k = min(rank, S.shape[0])
            up = ((qb @ U[:, :k]) * S[:k]).reshape(up0.shape[0], k, *([1] * (up0.dim() - 2)))
            down = (Vh[:k] @ qa.T).reshape(k, *down0.shape[1:])
            tensors[stem + SUFFIX_DOWN] = down.to("cpu", out_dtype).contiguous()
            tensors[stem + SUFFIX_UP] = up.to("cpu", out_dtype).contiguous()
            tensors[stem + ".alpha"] = torch.tensor(float(k), dtype=out_dtype)
        else:
            deltas = [_delta(d, u, a, device, work) for (d, u, a), _ in present]
            ws = [w for _, w in present]
            if method == "ties":
                merged = _ties(deltas, ws, density)
            else:
                merged = _dare(deltas, ws, density, generator)
            U, S, Vh = torch.linalg.svd(merged, full_matrices=False)
            k = min(rank, S.shape[0])
            up = (U[:, :k] * S[:k]).reshape(up0.shape[0], k, *([1] * (up0.dim() - 2)))
            down = Vh[:k].reshape(k, *down0.shape[1:])
            tensors[stem + SUFFIX_DOWN] = down.to("cpu", out_dtype).contiguous()
            tensors[stem + SUFFIX_UP] = up.to("cpu", out_dtype).contiguous()
            tensors[stem + ".alpha"] = torch.tensor(float(k), dtype=out_dtype)
        emit({"type": "progress", "task": "merge", "current": n + 1, "total": len(stems)})
    save_file(tensors, output, metadata={"loraspec.merge_method": method})
    return {"output": output, "modules": len(stems), "rank": rank, "method": method, "device": device.type, "seconds": round(time.time() - started, 3)}
