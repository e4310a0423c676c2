"""`merge`: merges LoRAs in delta space with torch and re-factors each module to rank R.

Request:
  {"inputs": [{"path": "a.safetensors", "weight": 0.5}, ...],   # kohya layout: <stem>.lora_down.weight,
                                                                # <stem>.lora_up.weight, optional <stem>.alpha
   "method": "svd" | "ties" | "dare" | "linear",
   "rank": 16 | null,            # default: the largest input rank; else an integer >= 1
   "density": 0.7,               # ties/dare: share of entries kept, in (0, 1]
   "seed": 0,                    # dare masks and the randomized SVD are seeded
   "output": "out.safetensors",  # same layout, alpha = rank (scale 1)
   "dtype": "F32" | "BF16" | "F16",
   "device": "auto" | "cpu" | "cuda",
   "threads": null,              # CPU threads (default: OMP_NUM_THREADS, else every CPU this process may use)
   "exact_svd": false}           # ties/dare: full SVD instead of torch.svd_lowrank (slow; for checks)

Per module, with delta_i = (alpha_i / r_i) * up_i @ down_i (conv flattened; a module missing from
an input counts as zero), in float32 (the svd method's small QR core in float64 on the CPU):
  svd:    M = sum_i w_i delta_i, factored in the low-rank space: thin QRs of the stacked B and A and
          the SVD of the small core (exact; M is never formed).
  ties:   trim each delta_i to its top int(density * numel) entries by |value| (the k-th largest |value|
          found exactly by a sampled bracket, never a sort); elect the sign of sum_i trimmed_i (peft
          "total"); M = sum_i w_i trimmed_i [sign agrees] / max(1, count agreeing) (peft `ties_svd`).
  dare:   delta_i * Bernoulli(density) / density (seeded CPU generator, as peft draws it), then
          M = sum_i w_i masked_i (peft `dare_linear_svd`).
  linear: peft `linear` on the factors (equal ranks required): down = sum sign(c_i) sqrt|c_i| down_i,
          up = sum sqrt|c_i| up_i with c_i = w_i * alpha_i / r_i. Not delta-exact (cross terms): lossy, as peft;
          `loraspec merge` measures the result against the exact weighted sum (engine lora/delta-error.ts) and warns.
ties/dare then factor the dense M to rank R with torch.svd_lowrank (R + oversampling columns, a few
power iterations); the relative error ||M - M_R||_F / ||M||_F is exact for the returned factors
(U_R S_R V_R^T is the projection of M onto span(U_R), so ||M - M_R||^2 = ||M||^2 - sum S_R^2) and
is reported per module. Tuning: TUNING below (source, asOf).
"""

from __future__ import annotations

import contextlib
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
METHODS = ("svd", "ties", "dare", "linear")
# Tuning of the fast paths, as one data record.
TUNING = {
    "source": "Halko, Martinsson & Tropp 2011 (oversampling 5-10, 1-2 power iterations; torch.svd_lowrank's defaults); loraspec measurements in bench/RESULTS.md 'LoRA merge speed'",
    "asOf": "2026-12-02",
    "topk_sample": 65536,  # entries sampled to bracket the k-th largest |value|
    "topk_bracket_sigmas": 6,  # bracket half-width in binomial standard deviations
    "svd_oversample": 10,  # extra columns beyond the target rank
    "svd_power_iterations": 2,
    "svd_exact_below_ratio": 4,  # full SVD when (rank + oversample) * this >= min(out, in)
    "chunk_elements": 1 << 18,  # elementwise work per block: 1 MiB of float32, stays in L2
    "compile_cpu_ties": True,  # fuse the elementwise TIES step with torch.compile on the CPU
    "compile_min_elements": 1 << 22,  # ... for deltas this large (the one-off compile costs ~13 s here)
}


class _Lora:
    """One input file, read one module at a time (never all of it in float32 at once)."""

    def __init__(self, path: str, stack: contextlib.ExitStack):
        if not os.path.exists(path):
            raise WorkerError("E_FILE_NOT_FOUND", f"no such file: {path}")
        self.path = path
        try:
            self.f = stack.enter_context(safe_open(path, framework="pt"))
        except Exception as e:  # the reference reader's own verdict, as a coded error
            raise WorkerError("E_SAFETENSORS_INVALID", f"{path}: {e}") from None
        keys = set(self.f.keys())
        self.stems: dict = {}
        for k in keys:
            if not k.endswith(SUFFIX_DOWN):
                continue
            stem = k[: -len(SUFFIX_DOWN)]
            if stem + SUFFIX_UP not in keys:
                raise WorkerError("E_LORA_UNUSED_KEYS", f"{k} has no matching lora_up in {path}")
            alpha = None
            if stem + ".alpha" in keys:
                alpha = float(self.f.get_tensor(stem + ".alpha").reshape(-1)[0].item())
            self.stems[stem] = alpha
        used = {s + sfx for s in self.stems for sfx in (SUFFIX_DOWN, SUFFIX_UP, ".alpha")}
        unused = sorted(keys - used)
        if unused:
            raise WorkerError("E_LORA_UNUSED_KEYS", f"{len(unused)} key(s) in {path} are not LoRA down/up/alpha: {', '.join(unused[:8])}")

    def rank(self, stem: str) -> int:
        return int(self.f.get_slice(stem + SUFFIX_DOWN).get_shape()[0])

    def factors(self, stem: str, device, dtype):
        """(down [r, in...], up [out, r, ...], scale) on device in dtype."""
        down = self.f.get_tensor(stem + SUFFIX_DOWN).to(device, dtype)
        up = self.f.get_tensor(stem + SUFFIX_UP).to(device, dtype)
        alpha = self.stems[stem]
        r = down.shape[0]
        scale = 1.0 if alpha is None or alpha == 0 or r == 0 else alpha / r
        return down, up, scale


def _delta(lora: _Lora, stem: str, device, dtype) -> torch.Tensor:
    down, up, scale = lora.factors(stem, device, dtype)
    r = down.shape[0]
    return (up.reshape(up.shape[0], -1) * scale) @ down.reshape(r, -1)


def _chunks(t: torch.Tensor):
    """Row blocks of a 2-D tensor small enough to stay in the CPU cache through several ops."""
    rows = max(1, TUNING["chunk_elements"] // max(1, t.shape[1])) if t.device.type == "cpu" else t.shape[0]
    for r in range(0, t.shape[0], rows):
        yield t[r : r + rows]


def topk_threshold(d: torch.Tensor, k: int, generator: torch.Generator) -> float:
    """The k-th largest |value| of the 2-D tensor `d`, exactly, in one linear pass.

    A random sample brackets the answer ([lo, hi] holds it with overwhelming probability); one
    pass counts the values above hi and gathers the band [lo, hi] (a small share of `d`), and
    kthvalue on the band gives the exact value. A bracket that misses falls back to kthvalue on all.
    """
    n = d.numel()
    if k <= 0:
        return math.inf
    if k >= n:
        return 0.0
    s = min(n, TUNING["topk_sample"])
    if s == n:
        return float(d.abs().reshape(-1).kthvalue(n - k + 1).values)
    idx = torch.randint(n, (s,), generator=generator).to(d.device)
    sample = d.reshape(-1)[idx].abs().float()
    q = 1.0 - k / n
    eps = TUNING["topk_bracket_sigmas"] * math.sqrt(q * (1 - q) / s) + 2.0 / s
    lo = float(torch.quantile(sample, q - eps)) if q - eps > 0 else 0.0
    hi = float(torch.quantile(sample, q + eps)) if q + eps < 1 else math.inf
    above, band = 0, []
    for c in _chunks(d):
        a = c.abs()
        if hi != math.inf:
            above += int((a > hi).sum())
        band.append(a[(a >= lo) & (a <= hi)])
    need = k - above
    pool = torch.cat(band)
    if 0 < need <= pool.numel():
        return float(pool.kthvalue(pool.numel() - need + 1).values)
    return float(d.abs().reshape(-1).kthvalue(n - k + 1).values)


def _ties_elementwise(ds: list, thresholds: list, weights: list) -> torch.Tensor:
    """peft ties ("total" sign election) on same-shape blocks, as one expression graph (fusable)."""
    trimmed = [torch.where(d.abs() >= t, d, 0.0) for d, t in zip(ds, thresholds)]
    total = trimmed[0]
    for t in trimmed[1:]:
        total = total + t
    positive = total >= 0
    num = cnt = None
    for t, w in zip(trimmed, weights):
        agree = torch.where(positive, t > 0, t < 0)  # t * sign(total) > 0, sign(0) elected +1
        part = torch.where(agree, t, 0.0) * w
        num = part if num is None else num + part
        a = agree.to(t.dtype)
        cnt = a if cnt is None else cnt + a
    return num / cnt.clamp(min=1)


_FUSED: dict = {}


def _fused_ties():
    """The elementwise TIES step compiled into one loop (inductor's C++ backend) on the CPU, or None.

    Eager torch makes ~20 passes over memory per element; the compiled loop makes one (reads the
    deltas, writes the result). Compiled once per process with dynamic shapes (thresholds are 0-d
    tensors, so no recompile per module). Any failure to compile (no C++ compiler, an unsupported
    platform) falls back to cache-sized eager blocks: same values, only slower.
    """
    if "fn" not in _FUSED:
        fn = None
        if TUNING["compile_cpu_ties"]:
            try:
                fn = torch.compile(_ties_elementwise, dynamic=True, fullgraph=True)
                x = torch.zeros(8)
                fn([x, x], [torch.tensor(0.0), torch.tensor(0.0)], [1.0, 1.0])  # compile now (and probe)
            except Exception:  # noqa: BLE001 - any compile failure means: use eager
                fn = None
        _FUSED["fn"] = fn
    return _FUSED["fn"]


def _ties(deltas: list, weights: list, density: float, generator: torch.Generator) -> torch.Tensor:
    """peft ties ("total" sign election) on dense 2-D deltas: fused on the CPU, else in blocks."""
    thresholds = [topk_threshold(d, int(density * d.numel()), generator) for d in deltas]
    big = deltas[0].device.type == "cpu" and deltas[0].numel() >= TUNING["compile_min_elements"]
    fused = _fused_ties() if big else None
    if fused is not None:
        flat = [d.contiguous().reshape(-1) for d in deltas]
        ths = [torch.tensor(t, dtype=deltas[0].dtype) for t in thresholds]
        try:
            return fused(flat, ths, list(weights)).reshape(deltas[0].shape)
        except Exception:  # noqa: BLE001 - a late compile failure: eager from now on
            _FUSED["fn"] = None
    out = torch.empty_like(deltas[0])
    for rows in zip(_chunks(out), *[_chunks(d) for d in deltas]):
        rows[0].copy_(_ties_elementwise(rows[1:], thresholds, weights))
    return out


def _dare(deltas: list, weights: list, density: float, generator: torch.Generator) -> torch.Tensor:
    out = torch.zeros_like(deltas[0])
    for d, w in zip(deltas, weights):
        # Same draw as peft's random_pruning (bernoulli of a density-filled tensor), from a seeded
        # CPU generator so the masks do not depend on the device.
        keep = torch.bernoulli(torch.full(d.shape, density, dtype=d.dtype), generator=generator).to(d.device)
        out.add_(d.mul_(keep), alpha=w / density)
    return out


def factor(m: torch.Tensor, rank: int, exact: bool = False):
    """Rank-`rank` factors (U*S [out, k], Vh [k, in]) of a dense matrix and its relative error."""
    rows, cols = m.shape
    full = min(rows, cols)
    k = min(rank, full)
    q = min(full, k + TUNING["svd_oversample"])
    # ||M||^2 accumulated in float64 a block at a time (no float64 copy of M).
    norm2 = sum(float(c.double().square().sum()) for c in _chunks(m)) if m.numel() else 0.0
    if exact or q >= full or q * TUNING["svd_exact_below_ratio"] >= full:
        U, S, Vh = torch.linalg.svd(m, full_matrices=False)
        U, S, Vh = U[:, :k], S[:k], Vh[:k]
    else:
        U, S, V = torch.svd_lowrank(m, q=q, niter=TUNING["svd_power_iterations"])
        U, S, Vh = U[:, :k], S[:k], V[:, :k].T
    kept = float(S.double().square().sum())
    error = math.sqrt(max(0.0, 1.0 - kept / norm2)) if norm2 > 0 else 0.0
    return U * S, Vh, k, error


def _check(request: dict) -> dict:
    """Every field checked before any file is read (the CLI/library check them too, in core)."""
    inputs = request.get("inputs") or []
    method = request.get("method", "svd")
    if method not in METHODS:
        raise WorkerError("E_USAGE", f"unknown merge method '{method}' ({', '.join(METHODS)})")
    if len(inputs) < 1:
        raise WorkerError("E_USAGE", "merge needs at least one input")
    weights = [i.get("weight", 1.0) for i in inputs]
    for i, w in zip(inputs, weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise WorkerError("E_USAGE", f"weight of {i.get('path')} must be a finite number, got {w!r}")
    density = request.get("density", 0.7)
    if method in ("ties", "dare") and not (isinstance(density, (int, float)) and 0 < density <= 1):
        raise WorkerError("E_USAGE", f"density must be in (0, 1], got {density}")
    rank = request.get("rank")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise WorkerError("E_USAGE", f"rank must be an integer >= 1, got {rank!r}")
    if not request.get("output"):
        raise WorkerError("E_USAGE", "merge needs an output path")
    if request.get("dtype", "F32") not in DTYPES:
        raise WorkerError("E_USAGE", f"unknown dtype {request.get('dtype')}")
    return {"inputs": inputs, "method": method, "weights": [float(w) for w in weights], "density": float(density), "rank": rank}


def _set_threads(request: dict) -> int:
    n = request.get("threads")
    if n is None and "OMP_NUM_THREADS" not in os.environ:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if n:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


def _merge_module(method: str, present: list, rank: int, density: float, generator, device, exact: bool):
    """One module: (down, up, k, error) with up @ down the merged delta at rank k."""
    lora0, _, stem = present[0]
    if method == "linear":
        if len({lora.rank(stem) for lora, _, _ in present}) != 1:
            raise WorkerError("E_LORA_SHAPE_MISMATCH", f"linear merge needs equal ranks ({stem}); use svd, ties or dare")
        down = up = None
        for lora, w, _ in present:
            d, u, scale = lora.factors(stem, device, torch.float64 if device.type == "cpu" else torch.float32)
            c = w * scale
            dd, uu = math.copysign(math.sqrt(abs(c)), c) * d, math.sqrt(abs(c)) * u
            down, up = (dd, uu) if down is None else (down + dd, up + uu)
        return down, up, down.shape[0], None
    shape_down = list(lora0.f.get_slice(stem + SUFFIX_DOWN).get_shape())
    shape_up = list(lora0.f.get_slice(stem + SUFFIX_UP).get_shape())
    if method == "svd":
        work = torch.float64 if device.type == "cpu" else torch.float32
        bs, as_ = [], []
        for lora, w, _ in present:
            d, u, scale = lora.factors(stem, device, work)
            bs.append((w * scale) * u.reshape(u.shape[0], -1))
            as_.append(d.reshape(d.shape[0], -1))
        qb, rb = torch.linalg.qr(torch.cat(bs, dim=1))
        qa, ra = torch.linalg.qr(torch.cat(as_, dim=0).T)
        U, S, Vh = torch.linalg.svd(rb @ ra.T)
        k = min(rank, S.shape[0])
        kept, total = float(S[:k].square().sum()), float(S.square().sum())
        up, down = (qb @ U[:, :k]) * S[:k], Vh[:k] @ qa.T
        error = math.sqrt(max(0.0, 1 - kept / total)) if total > 0 else 0.0
    else:
        deltas = [_delta(lora, stem, device, torch.float32) for lora, _, _ in present]
        ws = [w for _, w, _ in present]
        merged = _ties(deltas, ws, density, generator) if method == "ties" else _dare(deltas, ws, density, generator)
        del deltas
        up, down, k, error = factor(merged, rank, exact)
    up = up.reshape(shape_up[0], k, *([1] * (len(shape_up) - 2)))
    down = down.reshape(k, *shape_down[1:])
    return down, up, k, error


def run(request: dict) -> dict:
    req = _check(request)
    method, weights, density = req["method"], req["weights"], req["density"]
    want = request.get("device", "auto")
    device = torch.device("cuda" if (want in ("auto", "cuda") and torch.cuda.is_available()) else "cpu")
    out_dtype = DTYPES[request.get("dtype", "F32")]
    seed = int(request.get("seed", 0))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)  # torch.svd_lowrank draws its test matrix from the global generator
    threads = _set_threads(request)
    exact = bool(request.get("exact_svd", False))

    with contextlib.ExitStack() as stack:
        loaded = [_Lora(i["path"], stack) for i in req["inputs"]]
        stems = sorted(set().union(*[set(m.stems) for m in loaded]))
        ranks = [m.rank(s) for m in loaded for s in m.stems]
        rank = req["rank"] or max(ranks or [1])
        emit({"type": "phase", "name": "merge", "message": f"{method} of {len(loaded)} LoRAs, {len(stems)} modules, rank {rank}, on {device.type} ({threads} CPU threads)"})
        tensors: dict = {}
        errors: dict = {}
        started = time.time()
        for n, stem in enumerate(stems):
            present = [(m, w, stem) for m, w in zip(loaded, weights) if stem in m.stems]
            down, up, k, error = _merge_module(method, present, rank, density, generator, device, exact)
            tensors[stem + SUFFIX_DOWN] = down.to("cpu", out_dtype).contiguous()
            tensors[stem + SUFFIX_UP] = up.to("cpu", out_dtype).contiguous()
            tensors[stem + ".alpha"] = torch.tensor(float(k), dtype=out_dtype)
            if error is not None:
                errors[stem] = error
            elapsed = time.time() - started
            emit({"type": "progress", "task": "merge", "current": n + 1, "total": len(stems), "rate": (n + 1) / elapsed if elapsed > 0 else None})
    save_file(tensors, request["output"], metadata={"loraspec.merge_method": method})
    result = {"output": request["output"], "modules": len(stems), "rank": rank, "method": method, "device": device.type, "threads": threads, "seconds": round(time.time() - started, 3)}
    if errors:
        worst = max(errors, key=errors.get)
        result["error"] = {"max": errors[worst], "mean": sum(errors.values()) / len(errors), "worst": worst, "modules": errors}
    return result
