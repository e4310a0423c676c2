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


def configure(cache_dir: Optional[str]) -> Optional[str]:
    """Points inductor's and Triton's caches into `cache_dir` and loads the saved artifacts. Call it
    before anything compiles. Returns the artifacts file path, or None without a cache folder."""
    if not cache_dir:
        return None
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
    path = artifacts_path(cache_dir)
    load(path)
    return path


def _ignored(path: str, why: str) -> None:
    warning(f"compile cache {path} ignored ({why}); this run compiles from scratch and rewrites it", code=SPEC["warning"])


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
    return True


def save(path: Optional[str]) -> bool:
    """Writes this process's compile artifacts to `path` atomically. False when nothing compiled."""
    if not path:
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
