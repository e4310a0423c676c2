"""`python -m loraspec_worker <command> [request.json | -] [--key value ...]`

Each command lives in its own module exposing `run(request: dict) -> dict | None`; it emits
events with protocol.emit while it works and returns the `done` event's result. Modules are
imported only when their command runs, so `--help` and light commands start fast.
To add a command, add one entry to COMMANDS.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import traceback

from . import protocol
from .protocol import Cancelled, WorkerError, emit

# command -> "module:function" (imported lazily)
COMMANDS: dict[str, str] = {
    "train": "loraspec_worker.train:run",
    "train-rank": "loraspec_worker.train.runner:run_rank",
    "sample": "loraspec_worker.sample:run",
    "score": "loraspec_worker.score:run",
    "embed": "loraspec_worker.embed:run",
    "render-jobs": "loraspec_worker.render_jobs:run",
    "make-tiny-base": "loraspec_worker.tiny_base:run",
    "caption": "loraspec_worker.caption:run",
    "version": "loraspec_worker.version:run",
    "selftest": "loraspec_worker.selftest:run",
    "merge": "loraspec_worker.merge:run",
}


def _usage() -> str:
    return "usage: python -m loraspec_worker <command> [request.json | -] [--key value ...]\ncommands: " + ", ".join(sorted(COMMANDS))




def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stderr.write(_usage() + "\n")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    protocol.take_stdout()
    # The bridge sends SIGINT, then SIGTERM: both end the command through Cancelled (exit 130);
    # inside protocol.soft_cancel() the first one only asks the command to stop at a safe point.
    signal.signal(signal.SIGTERM, protocol.on_signal)
    signal.signal(signal.SIGINT, protocol.on_signal)
    try:
        target = COMMANDS.get(command)
        if target is None:
            raise WorkerError("E_USAGE", f"unknown worker command '{command}'", hint=_usage())
        request = protocol.read_request(rest)
        module_name, func_name = target.split(":")
        handler = getattr(importlib.import_module(module_name), func_name)
        result = handler(request)
        emit({"type": "done", "result": result or {}})
        return 0
    except WorkerError as e:
        emit(e.to_event())
        return protocol.EXIT_CODED_ERROR
    except (Cancelled, KeyboardInterrupt):
        emit({"type": "error", "code": "E_CANCELLED", "message": "cancelled"})
        return protocol.EXIT_CANCELLED
    except Exception as e:  # noqa: BLE001 - the last line of defence: report, never hang
        traceback.print_exc(file=sys.stderr)
        if protocol.is_oom(e):
            emit(
                {
                    "type": "error",
                    "code": "E_OUT_OF_MEMORY",
                    "message": f"out of memory: {str(e).splitlines()[0][:300]}",
                    "hint": "lower batch size or resolution, turn on gradient_checkpointing, or use adamw8bit",
                    "retryable": True,
                }
            )
            return protocol.EXIT_CODED_ERROR
        emit({"type": "error", "code": "E_INTERNAL", "message": f"{type(e).__name__}: {e}"[:2000]})
        return protocol.EXIT_INTERNAL


def can_skip_teardown() -> bool:
    """Whether this process may end without the interpreter's teardown. Once torch and the libraries
    around it are imported, tearing their modules down is most of a finished command's exit: 0.9 s on a
    2-core CPU (`import torch, diffusers, transformers, peft` then exit: 4.1 s wall, 3.2 s with os._exit)
    and 1.7 s of an H200 SDXL run's 216 s (bench/RESULTS.md), where CUDA graphs and the context go too;
    the operating system reclaims all of it when the process ends. Only when nothing is left that a
    normal exit would finish: no process group (ranks end through torch.distributed), no other
    non-daemon thread still working (a checkpoint writer ends before the `done` event; one that has
    not is waited for), no child process of multiprocessing's (a normal exit stops them)."""
    if "torch" not in sys.modules:
        return False  # nothing heavy to tear down: the normal exit is as fast
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return False
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None and multiprocessing.active_children():
        return False
    return not any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread())


def exit_process(code: int) -> None:
    """Ends the worker process with `code`: every event and log line flushed first, then without the
    interpreter's teardown where can_skip_teardown() says so. Files the worker writes are closed
    (atomic writes in `with` blocks) before the command returns."""
    for stream in (protocol._out, sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    if can_skip_teardown():
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
