"""Checkpoint files that can be trusted on resume.

Every checkpoint file is written to a temp file, fsynced, renamed into place, and only then gets a
`<file>.sha256` beside it (written the same way): a file without its checksum, or whose bytes no
longer match it (a truncated `state.pt`, a disk that filled mid-write, a bit flip), is not used.
Resume takes the newest checkpoint whose files all verify and names every newer one it skipped in
a `W_CHECKPOINT_CORRUPT` warning, so one bad file never blocks a resume. A temp file is removed
when its write fails, and temp files of dead writers (`*.tmp-<pid>`) are swept before a run.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable, Optional

from .protocol import warning

SUFFIX = ".sha256"
STATE = "state.pt"
_CHUNK = 1 << 20


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """`write(tmp)` into a temp file beside `path`, fsync, rename, fsync the folder: a reader sees the
    old file or the new, never half; a failed write leaves no temp file. The worker's one atomic writer
    (checkpoints, the compile cache, sample PNGs)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A failed write (disk full, a signal) leaves neither a temp file nor a half file behind.
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def atomic_save(path: str, write: Callable[[str], None]) -> None:
    """Writes `path` through `write(tmp)`, then its checksum: the checksum exists only for a whole file."""
    try:
        os.remove(path + SUFFIX)  # an old checksum must never vouch for the new bytes
    except OSError:
        pass
    atomic_write(path, write)
    digest = sha256_file(path)

    def write_sum(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{digest}  {os.path.basename(path)}\n")

    atomic_write(path + SUFFIX, write_sum)


def remove_checksum(path: str) -> None:
    try:
        os.remove(path + SUFFIX)
    except OSError:
        pass


def problem(path: str) -> Optional[str]:
    """Why `path` cannot be trusted (missing, no checksum, checksum mismatch); None when it verifies."""
    if not os.path.exists(path):
        return f"{os.path.basename(path)} is missing"
    try:
        with open(path + SUFFIX, encoding="utf-8") as f:
            expected = f.read().split()[0]
    except (OSError, IndexError):
        return f"{os.path.basename(path)} has no checksum (its write never finished)"
    if sha256_file(path) != expected:
        return f"{os.path.basename(path)} does not match its checksum (truncated or corrupt)"
    return None


def checkpoint_problem(folder: str) -> Optional[str]:
    """Why a checkpoint folder cannot be resumed from: its state.pt and LoRA file must both verify."""
    files = [STATE] + sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if len(files) == 1:
        return "it holds no LoRA file"
    for name in files:
        why = problem(os.path.join(folder, name))
        if why:
            return why
    return None


def _steps(output_dir: str) -> list[str]:
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    names = [d for d in os.listdir(root) if d.startswith("step-") and os.path.exists(os.path.join(root, d, STATE))]
    return [os.path.join(root, d) for d in sorted(names, key=lambda d: int(d.split("-")[1]), reverse=True)]


def newest_good_checkpoint(output_dir: str) -> Optional[str]:
    """The newest checkpoint that verifies; a warning names each newer one that does not."""
    folders = _steps(output_dir)
    if folders and not any(f.endswith(SUFFIX) for d in folders for f in os.listdir(d)):
        # Written before checksums existed: trust the newest, as loraspec did then.
        warning(f"checkpoints under {output_dir} predate checksums; resuming from {folders[0]} unverified", code="W_CHECKPOINT_UNVERIFIED")
        return folders[0]
    for folder in folders:
        why = checkpoint_problem(folder)
        if why is None:
            return folder
        warning(f"checkpoint {folder} is not usable ({why}); trying the one before it", code="W_CHECKPOINT_CORRUPT")
    return None


def remove_stale_temp_files(output_dir: str) -> list[str]:
    """Deletes `*.tmp-<pid>` files under output_dir whose writer is gone (a kill mid-save)."""
    removed = []
    for folder, _dirs, files in os.walk(output_dir):
        for name in files:
            stem, sep, pid = name.rpartition(".tmp-")
            if not sep or not stem or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
                continue
            try:
                os.remove(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
