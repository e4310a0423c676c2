"""torch.compile's work kept across runs (issue 22): a second run of the same configuration reuses
the first one's compiled kernels instead of compiling again (FLUX.1: ~60 s warm-up per run).

Core decides where (the request's `compile_cache_dir`, under loraspec's cache folder; the file
name and the warning code are the built-in trainer table's `compileCache`). Two layers:
- inductor's and Triton's on-disk caches (FX graph, AOTAutograd, autotuning, kernels) are pointed
  into that folder (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR) before anything compiles;
- torch.compiler's portable cache artifacts (`save_cache_artifacts` / `load_cache_artifacts`,
  https://docs.pytorch.org/tutorials/recipes/torch_compile_caching_tutorial.html) are saved to one
  file after the run's compiles and loaded before the next run compiles, so a cache folder copied
  to another machine (or a wiped /tmp) still warms up fast.
A file torch cannot read (corrupt, another torch version, a half copy) is ignored with a coded
warning and rewritten at the end of the run: never a crash. Writes are atomic (temp + rename).

What a warm start still pays (measured on the CPU, tiny FLUX.1 of 3 double + 6 single blocks,
torch 2.13; tests/test_regional_compile.py): regional compile compiles one graph per block KIND and
input variant, never per instance (2+2 and 3+6 blocks: 4 graphs; FLUX.1's 19+38 have the same
structure, and the trainer's log line says what a GPU run compiled): the first double
block's input needs no gradient (frozen x_embedder), the first single block's inputs are fresh
tensors where the later ones get slices of the previous block's concat (another batch stride, so
automatic dynamic recompiles that kind with a symbolic stride). A warm process still runs Dynamo
on each of those frames (bytecode tracing, guards) and loads each compiled graph from the cache
(AOTAutograd + FX graph cache hits, no inductor compile). Dynamo's "PGO" (profile-guided automatic
dynamic, https://docs.pytorch.org/docs/stable/torch.compiler.config.html `job_id`) remembers the
symbolic stride in the cache folder (and in the artifacts file), so a warm run compiles 3 frames,
not 4; its profile is keyed by `workload_key` (the request's shapes), so a run at another
resolution never makes this one's graphs dynamic. Dynamo's experimental precompile cache
(`torch._dynamo.config.caching_precompile`) is off: here it still traced 2 frames, missed the
AOTAutograd cache for both (9.1 s vs 3.7 s for the first step) and drops guards it cannot save;
`bundled_autograd_cache` loaded the same compiled code in no less time.
AOTAutograd's cache (the joint forward/backward trace and its partition, ~6 s of the H200 FLUX.1 warm
start's 10.3 s when it is skipped) is used only for a graph torch deems cacheable; the report counts its
bypasses and names torch's reason. Two of the GPU path's constructs made torch bypass it: the fp8 base's
custom autograd.Function (speed.Fp8LinearFunction: "Unsupported call_function target
autograd_function_apply" unless `autograd_cache_allow_custom_autograd_functions`, set in configure) and
selective checkpointing's policy ("SAC context_fn does not have a cache_hash attribute"; selective_ckpt
sets one per policy). FA4 replaces the CUDA kernels of aten's flash-attention ops, which stay cacheable.
`report` summarises what this process compiled (the trainer logs it after the loop).
FA4's kernels (CuTe DSL, compiled at each kernel's first call) are kept in the same folder through
flash-attn-4's own persistent cache (`configure_kernels`, before flash_attn.cute imports: it reads its switch
at import; core's FA4_KERNEL.persistentCache names the switch and folder variables).
"""

from __future__ import annotations

import os
from typing import Optional

from ..checkpoint_integrity import atomic_write
from ..protocol import emit, warning
from .config import TABLE

SPEC = TABLE["compileCache"]


def artifacts_path(cache_dir: str) -> str:
    """One artifacts file per torch version (another version's artifacts never load)."""
    import torch

    version = "".join(c if c.isalnum() or c in ".-" else "_" for c in torch.__version__)
    return os.path.join(cache_dir, SPEC["artifactsFile"].replace("{torch}", version))


def workload_key(cfg) -> str:
    """What fixes the shapes the compiled blocks see: runs with the same key share Dynamo's dynamism
    profile (PGO). Steps, learning rate and the like are left out (a cold and a warm run differ there)."""
    import hashlib
    import json

    shapes = sorted((b["width"], b["height"]) for b in cfg.buckets) or [(cfg.resolution, cfg.resolution)]
    spec = {"arch": cfg.arch, "buckets": shapes, "batch": cfg.batch_size, "text": cfg.max_sequence_length, "precision": cfg.precision}
    return f"{cfg.arch}-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def configure_kernels(cache_dir: Optional[str], attention: str, device) -> Optional[str]:
    """With FA4 asked for and a cache folder, turns on flash-attn-4's persistent kernel cache in the folder's
    compileCache.fa4Dir, one subfolder per compute capability (some of FA4's cache keys leave the GPU's arch
    out, and a kernel is built for the card it was compiled on). Call it before anything imports flash_attn.cute.
    Returns that folder, or None."""
    if not cache_dir or attention != "fa4":
        return None
    import torch

    card = "sm%d%d" % torch.cuda.get_device_capability(device) if device.type == "cuda" else device.type
    spec = TABLE["attention"]["fa4"]["persistentCache"]
    folder = os.path.join(os.path.abspath(cache_dir), SPEC["fa4Dir"], card)
    os.environ[spec["enabledEnv"]] = "1"
    os.environ[spec["dirEnv"]] = folder
    return folder


def configure(cache_dir: Optional[str], workload: Optional[str] = None) -> Optional[str]:
    """Points inductor's and Triton's caches into `cache_dir` and loads the saved artifacts. Call it
    before anything compiles. `workload` (workload_key) turns on Dynamo's PGO profile for runs of
    that shape. Returns the artifacts file path, or None without a cache folder."""
    if not cache_dir:
        return None
    import torch
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    cache_dir = os.path.abspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache_dir, SPEC["inductorDir"])
    os.environ["TRITON_CACHE_DIR"] = os.path.join(cache_dir, SPEC["tritonDir"])
    # On by default in torch >= 2.5; said here so an environment that turned them off does not
    # silently compile from scratch every run.
    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    # Off by default in torch (2.13 here): a graph holding a custom autograd.Function (the fp8 base's
    # Fp8LinearFunction, speed.py) bypasses the AOTAutograd cache ("Unsupported call_function target
    # autograd_function_apply", torch/_ops.py HigherOrderOperator.cacheable), so each warm start re-traced
    # and re-partitioned every block's joint graph (H200 FLUX.1: ~6 s of a 10.3 s warm-up). Dynamo traces
    # the Function's forward and backward into the graph's subgraphs, which the cache key hashes.
    functorch_config.autograd_cache_allow_custom_autograd_functions = True
    watch_bypasses()
    if workload:
        # Local PGO (on by default) reads and writes its profile only under a job id.
        torch._dynamo.config.automatic_dynamic_local_pgo = True
        torch.compiler.config.job_id = f"loraspec-{workload}"
    path = artifacts_path(cache_dir)
    load(path)
    return path


BYPASS_COUNTER = "loraspec_aot_bypass"  # torch's counters (cleared with them): the reason -> how many graphs
_AOT_LOGGER = "torch._functorch._aot_autograd.autograd_cache"


def _bypass_filter(record) -> bool:
    """Counts the reason of each AOTAutograd cache bypass (torch says it only in an INFO log line) and lets
    through what torch's logging would have shown anyway."""
    import logging

    message = record.getMessage()
    if message.startswith("Bypassing autograd cache due to:"):
        from torch._dynamo.utils import counters

        reason = " ".join(message.split(":", 1)[1].split())[:200]
        counters[BYPASS_COUNTER][reason] += 1
    return record.levelno >= logging.getLogger(_AOT_LOGGER).parent.getEffectiveLevel()


def watch_bypasses() -> None:
    """Makes torch's AOTAutograd cache bypass reasons reach report() (idempotent)."""
    import logging

    log = logging.getLogger(_AOT_LOGGER)
    if _bypass_filter not in log.filters:
        log.addFilter(_bypass_filter)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)


def _ignored(path: str, why: str) -> None:
    warning(f"compile cache {path} ignored ({why}); this run compiles from scratch and rewrites it", code=SPEC["warning"])


_loaded: set = set()  # the artifacts files this process loaded


def load(path: str) -> bool:
    """Hot-loads the artifacts file into torch's caches. True when it loaded; False when there is
    none or it is unreadable (then a coded warning)."""
    import torch

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    except OSError as e:
        _ignored(path, f"{type(e).__name__}: {e}")
        return False
    if not data:
        _ignored(path, "empty file")
        return False
    try:
        info = torch.compiler.load_cache_artifacts(data)
    except Exception as e:  # noqa: BLE001 - any unreadable cache is a cold start, never a failed run
        _ignored(path, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
        return False
    if info is None:  # torch logs "Bytes object is corrupted" and returns None
        _ignored(path, "torch could not read it (corrupt, or written by another torch)")
        return False
    emit({"type": "log", "level": "info", "message": f"compile cache loaded from {path} ({len(data) / 2**20:.1f} MiB)"})
    _loaded.add(os.path.abspath(path))
    return True


def served_every_graph(path: str) -> bool:
    """True when `path` was loaded in this process and every graph compiled since came from the caches
    (no FX-graph or AOTAutograd miss): the file already holds all of it. A warm run that saved anyway
    re-serialised the artifacts before the final save and wrote back a smaller file than it loaded (H100
    FLUX.1, 2026-12-06: 59.9 MiB loaded, 52.2 MiB saved: torch saves what this process recorded)."""
    c = cache_counts()
    return os.path.abspath(path) in _loaded and c["fx_misses"] == 0 and c["aot_misses"] == 0


def save(path: Optional[str]) -> bool:
    """Writes this process's compile artifacts to `path` atomically. False when nothing compiled, or
    when the file this process loaded served every graph (served_every_graph: left as it was)."""
    if not path:
        return False
    if served_every_graph(path):
        emit({"type": "log", "level": "info", "message": f"compile cache {path} left as it was (every graph of this run came from it)"})
        return False
    import torch

    try:
        saved = torch.compiler.save_cache_artifacts()
    except Exception as e:  # noqa: BLE001 - the LoRA matters more than the cache
        warning(f"compile cache not saved ({type(e).__name__}: {str(e)[:160]})", code=SPEC["warning"])
        return False
    if not saved or not saved[0]:
        return False
    write_atomic(path, saved[0])
    emit({"type": "log", "level": "info", "message": f"compile cache saved to {path} ({len(saved[0]) / 2**20:.1f} MiB)"})
    return True


def write_atomic(path: str, data: bytes) -> None:
    """The artifacts file, written through the worker's atomic writer (checkpoint_integrity)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


# torch's compile-time phases (torch._dynamo.utils.compile_times) the report names; a phase this
# torch does not time is left out.
PHASES = {"dynamo_s": "_compile.compile_inner", "tracing_s": "bytecode_tracing", "backend_s": "OutputGraph.call_user_compiler",
          "cache_load_s": "AOTAutogradCache.inductor_load", "backward_compile_s": "compile_fx.<locals>.bw_compiler", "guards_s": "build_guards"}


def cache_counts() -> dict:
    """FX-graph and AOTAutograd cache hits and misses and AOTAutograd bypasses so far in this process (torch's counters)."""
    from torch._dynamo import utils

    c = utils.counters
    return {"fx_hits": c["inductor"].get("fxgraph_cache_hit", 0), "fx_misses": c["inductor"].get("fxgraph_cache_miss", 0),
            "aot_hits": c["aot_autograd"].get("autograd_cache_hit", 0), "aot_misses": c["aot_autograd"].get("autograd_cache_miss", 0),
            "aot_bypasses": c["aot_autograd"].get("autograd_cache_bypass", 0)}


def report() -> dict:
    """What this process compiled so far: Dynamo frames and graphs, the recompiles and why (the
    first failing guard of each), FX-graph and AOTAutograd cache hits and misses, AOTAutograd cache
    bypasses and torch's reasons (those logged after configure), and seconds per compile phase.
    Empty counts when nothing compiled."""
    from torch._dynamo import utils

    c = utils.counters
    out = {"frames": c["frames"].get("ok", 0), "graphs": c["stats"].get("unique_graphs", 0), **cache_counts(),
           "aot_bypass_reasons": dict(c[BYPASS_COUNTER]), "graph_breaks": sum(c["graph_break"].values())}
    reasons = {}
    for code, failures in list(getattr(utils, "guard_failures", {}).items()):
        where = f"{getattr(code, 'co_name', code)} ({os.path.basename(getattr(code, 'co_filename', ''))}:{getattr(code, 'co_firstlineno', 0)})"
        reasons[where] = [str(f).strip().splitlines()[0][:160] for f in failures]
    out["recompiles"] = reasons
    try:
        names, values = utils.compile_times(repr="csv", aggregate=True)
        seconds = dict(zip(names, values))
        out.update({k: round(float(seconds[v]), 2) for k, v in PHASES.items() if v in seconds})
        # the 8 longest timed phases (nested, so they overlap) of a second or more: where a GPU warm start goes (names differ across torch versions)
        out["slowest"] = {n: round(float(v), 1) for n, v in sorted(seconds.items(), key=lambda kv: -float(kv[1]))[:8] if float(v) >= 1.0}
    except Exception:  # noqa: BLE001 - the timing is a diagnostic, never a failed run
        pass
    return out


def report_message(r: dict) -> str:
    """One log line for the run's events (bench/gpu-wholerun.py keeps lines that say "compile cache")."""
    recompiles = sum(len(v) for v in r["recompiles"].values())
    why = "; ".join(f"{where}: {reasons[0]}" for where, reasons in r["recompiles"].items())
    phases = ", ".join(f"{k[:-2].replace('_', ' ')} {r[k]:.1f} s" for k in PHASES if k in r)
    bypass = "; ".join(f"{n}x {reason}" for reason, n in r.get("aot_bypass_reasons", {}).items())
    return (f"torch.compile in this run: {r['frames']} frames, {r['graphs']} graphs, {recompiles} recompiles"
            + (f" ({why})" if why else "") + f", {r['graph_breaks']} graph breaks; compile cache: FX graphs {r['fx_hits']} hit / "
            f"{r['fx_misses']} miss, AOTAutograd {r['aot_hits']} hit / {r['aot_misses']} miss / {r.get('aot_bypasses', 0)} bypass"
            + (f" ({bypass})" if bypass else "") + (f"; {phases}" if phases else "")
            + (f"; longest phases: {r['slowest']}" if r.get("slowest") else ""))
