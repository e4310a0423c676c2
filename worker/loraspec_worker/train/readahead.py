"""Reading the base's weight files into the page cache while the worker imports its libraries.

A run's first seconds are imports (torch, diffusers, transformers: 3 s on a 2-core CPU, 8-14 s on the GPU hosts,
bench/RESULTS.md) and then the load, which on a cold page cache waits on the disk (SDXL's 6.9 GB, FLUX.1's 33 GB).
The two use different resources, so a thread reads the weight files at the start of the run, in large sequential
reads, and the load then finds them in memory. diffusers maps safetensors files and reads their pages when the
weights are first touched (pipe.to(device)): page faults of a few pages each, 260 MB/s against 490 MB/s for a
sequential read on this project's 2-core machine (bench/load-readahead.py); posix_fadvise(WILLNEED) was tried
first and did not keep up (measured the same as no read-ahead).

Only the files the loader will read (each component's weights as diffusers picks them: a shard index's shards,
else the plain file), only as much as half the available memory (more would evict what it has just read), never
anything but a regular file of the base, and stopped once the base is loaded. Nothing here can fail a run: a base
it cannot read is the loader's to report.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Optional

from .model_index import listed_components

# What a component folder's weights are called, in the order diffusers and transformers prefer them (safetensors first).
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
_INDEX_SUFFIX = ".safetensors.index.json"
# Of the memory the kernel says is available, the share the read-ahead may fill (the load itself needs the rest).
_MEMORY_SHARE = 0.5


def weight_files(base: str) -> list[str]:
    """The weight files a load of `base` reads: a single .safetensors file, or a diffusers folder's components (as
    model_index.json lists them), or the cached snapshot of a Hugging Face id. [] for anything else."""
    if os.path.isfile(base):
        return [base] if base.endswith(".safetensors") else []
    folder = base if os.path.isdir(base) else _cached_snapshot(base)
    if folder is None:
        return []
    try:
        with open(os.path.join(folder, "model_index.json"), encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError):
        return []
    files: list[str] = []
    for name, _cls in listed_components(index):
        if "/" not in name and name not in (".", ".."):  # a component folder of the base, nothing outside it
            files += _component_weights(os.path.join(folder, name))
    return files


def _component_weights(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    entries = os.listdir(folder)
    for index_name in sorted(e for e in entries if e.endswith(_INDEX_SUFFIX) and e.count(".") == 3):  # no variant (x.fp16.safetensors.index.json)
        try:
            with open(os.path.join(folder, index_name), encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []
        return [os.path.join(folder, s) for s in shards if isinstance(s, str) and os.path.basename(s) == s]
    return [os.path.join(folder, n) for n in _WEIGHT_NAMES if n in entries][:1]


def _cached_snapshot(model: str) -> Optional[str]:
    """The local snapshot folder of a Hugging Face id already in the cache (no network), else None."""
    if model.startswith(("/", ".", "~")) or model.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "model_index.json")
    except Exception:  # noqa: BLE001 - not an id the cache knows
        return None
    return os.path.dirname(found) if isinstance(found, str) else None


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (0 where there is none: nothing is read ahead)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def plan(files: list[str], budget: int) -> list[tuple[str, int]]:
    """(file, size) for the regular files that fit the budget together, in the given order."""
    chosen, total = [], 0
    for path in files:
        try:
            st = os.stat(path)  # follows a snapshot's links to their blobs
        except OSError:
            continue
        if not os.path.isfile(path) or total + st.st_size > budget:
            continue
        chosen.append((path, st.st_size))
        total += st.st_size
    return chosen


# One read's size: large enough that the disk sees sequential reads, small enough to be nothing in memory.
_CHUNK = 16 << 20


class Readahead:
    """The reading thread (a daemon: it never holds a run's end) and its stop: once the base is loaded, whatever is
    left unread is no longer worth the disk."""

    def __init__(self, chosen: list[tuple[str, int]]):
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(chosen,), name="loraspec-readahead", daemon=True)
        self.thread.start()

    def _read(self, chosen: list[tuple[str, int]]) -> None:
        """Reads each file once (the bytes go to the page cache; the buffer is reused; the GIL is released while a read waits)."""
        buffer = memoryview(bytearray(_CHUNK))
        for path, _size in chosen:
            try:
                with open(path, "rb", buffering=0) as f:
                    while not self.stopped.is_set() and f.readinto(buffer):
                        pass
            except OSError:
                continue

    def stop(self) -> None:
        self.stopped.set()


def start(base: str) -> Optional[Readahead]:
    """Reads `base`'s weight files in a daemon thread (None: nothing to read)."""
    try:
        chosen = plan(weight_files(base), int(available_bytes() * _MEMORY_SHARE))
    except Exception:  # noqa: BLE001 - never a reason for a run to fail
        return None
    return Readahead(chosen) if chosen else None


def for_request(request: dict) -> Optional[Readahead]:
    """start() for a sampling command's request (its `base`), before the command imports torch."""
    base = request.get("base") if isinstance(request, dict) else None
    return start(base) if isinstance(base, str) else None


def stop(handle: Optional[Readahead]) -> None:
    if handle is not None:
        handle.stop()
