"""The worker's wire protocol, shared by every command.

Request in: a JSON object from a file path argument, from stdin (`-` or no argument with a pipe),
plus `--key value` flags that override fields (handy for humans: `make-tiny-base --arch sdxl --out d`).
Events out: one JSON object per line on stdout, flushed at once, in the shapes of
packages/core/src/events.ts. Human logs go to stderr. A failure becomes one
`{"type": "error", "code": ...}` event and a non-zero exit code.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from typing import Any, Callable, Optional, TextIO

# Exit codes: 1 = a coded error the bridge turns into that error; 70 = a bug (E_INTERNAL, like
# sysexits EX_SOFTWARE); 130 = cancelled (SIGINT convention).
EXIT_CODED_ERROR = 1
EXIT_INTERNAL = 70
EXIT_CANCELLED = 130


class WorkerError(Exception):
    """A failure with a stable loraspec error code (see packages/core/src/errors.ts)."""

    def __init__(self, code: str, message: str, hint: Optional[str] = None, retryable: Optional[bool] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.retryable = retryable

    def to_event(self) -> dict:
        event: dict = {"type": "error", "code": self.code, "message": self.message}
        if self.hint:
            event["hint"] = self.hint
        if self.retryable is not None:
            event["retryable"] = self.retryable
        return event


class Cancelled(Exception):
    """Raised in the main thread when the bridge sends SIGTERM/SIGINT."""


# Soft cancel: while a command is inside `soft_cancel()`, the first SIGINT/SIGTERM only sets a flag
# the command checks at a safe point (a training step boundary, where it saves a checkpoint);
# a second signal raises Cancelled at once.
_soft_depth = 0
_cancel_requested = False


class soft_cancel:
    def __enter__(self):
        global _soft_depth
        _soft_depth += 1
        return self

    def __exit__(self, *exc):
        global _soft_depth
        _soft_depth -= 1
        return False


def cancel_requested() -> bool:
    return _cancel_requested


def on_signal(signum, _frame=None):  # noqa: ANN001
    """The worker's SIGINT/SIGTERM handler (installed by __main__)."""
    global _cancel_requested
    import signal as _signal

    name = _signal.Signals(signum).name
    if _soft_depth > 0 and not _cancel_requested:
        _cancel_requested = True
        # no lock here: the handler may interrupt emit() while it holds _lock
        sys.stderr.write(f"[info] {name}: stopping at the next safe point (send it again to stop now)\n")
        return
    raise Cancelled(name)


# Re-entrant: a signal handler runs on the main thread and may emit while emit() holds the lock.
_lock = threading.RLock()
_out: Optional[TextIO] = None


def take_stdout() -> None:
    """Keep the real stdout for events only; anything else printing to stdout goes to stderr.

    Libraries sometimes print (warnings, progress); one stray line would break the JSON-lines
    stream, so fd 1 is pointed at stderr and events are written to a private copy of it.
    """
    global _out
    if _out is not None:
        return
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    _out = os.fdopen(private, "w", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr


def _finite(value: Any) -> Any:
    # JSON has no NaN/Infinity; a non-finite float goes out as null (the loss event's
    # consumer treats null as "not a number", and E_TRAIN_DIVERGED says why).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    # A 0-d tensor or numpy scalar (a fused or capturable optimizer's lr on CUDA is a tensor) goes
    # out as its number, never as its repr: "tensor(1.0000e-04, device='cuda:0')" broke the loss
    # event's `lr: number` (the event union's schema says number; test_sync holds emit to it).
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _finite(item())
    return str(value)  # a path or other object in a result: its text


def emit(event: dict) -> None:
    """Write one event as one JSON line and flush it."""
    # Optional fields left as None are dropped (the TS types say `eta?: number`, not null); a
    # non-finite loss stays as null so the reader sees which step went bad.
    event = {k: v for k, v in event.items() if v is not None or k == "loss"}
    line = json.dumps(_finite(event), allow_nan=False, default=_json_default)
    with _lock:
        out = _out if _out is not None else sys.stdout
        out.write(line + "\n")
        out.flush()


def log(message: str, level: str = "info") -> None:
    """A human log line on stderr (kept in the run's worker log, not in the event stream)."""
    with _lock:
        sys.stderr.write(f"[{level}] {message}\n")
        sys.stderr.flush()


# The worker's clock: phase events carry `at`, seconds since the worker started (whole-run timing,
# train/timing.py); the marks are kept for the run's timing summary.
_T0 = time.monotonic()
_phase_marks: list = []
_startup_marks: list = []  # (part, at) inside the start-up, before the first phase: no events, timing only


def elapsed() -> float:
    return time.monotonic() - _T0


def phase_marks() -> list:
    """[(name, at)] of the phases emitted so far, in order."""
    return list(_phase_marks)


def start_run_clock() -> None:
    """A command's timing starts at the process start (imports count as start-up); a second run in the
    same process (tests, the toy world) starts its own clock and marks, so its breakdown is its own."""
    global _T0
    if _phase_marks or _startup_marks:
        _T0 = time.monotonic()
        _phase_marks.clear()
        _startup_marks.clear()


def startup_mark(part: str) -> None:
    """The end of one part of the start-up (an import, the device, the levers): the timing summary's
    `startup_parts` say where the seconds before the first phase go (issue 22: 7-14 s on the GPU host
    against 1.7 s on a 2-core CPU). Marks after the first phase are ignored."""
    if not _phase_marks:
        _startup_marks.append((part, round(elapsed(), 3)))


def startup_marks() -> list:
    return list(_startup_marks)


def phase(name: str, message: Optional[str] = None) -> None:
    at = round(elapsed(), 3)
    _phase_marks.append((name, at))
    event: dict = {"type": "phase", "name": name, "at": at}
    if message:
        event["message"] = message
    emit(event)


def warning(message: str, code: Optional[str] = None) -> None:
    event: dict = {"type": "warning", "message": message}
    if code:
        event["code"] = code
    emit(event)


def _coerce_flag(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_request(argv: list[str], stdin: Optional[TextIO] = None) -> dict:
    """Builds the request from `[path | -] [--key value | --flag]...`.

    Flags use kebab or snake case (`--save-every 2` == `--save_every 2`); values are parsed as
    JSON when they can be (numbers, true/false, lists), else kept as strings.
    """
    stdin = stdin if stdin is not None else sys.stdin
    request: dict = {}
    source: Optional[str] = None
    flags: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and len(arg) > 2:
            key = arg[2:]
            value: Any = True
            if "=" in key:
                key, raw = key.split("=", 1)
                value = _coerce_flag(raw)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = _coerce_flag(argv[i + 1])
                i += 1
            flags[key.replace("-", "_")] = value
        elif source is None:
            source = arg
        else:
            raise WorkerError("E_USAGE", f"unexpected argument {arg!r}", hint="pass one request file (or -) and --key value flags")
        i += 1

    text: Optional[str] = None
    if source == "-":
        text = stdin.read()
    elif source is not None:
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise WorkerError("E_FILE_NOT_FOUND", f"request file not found: {source}") from None
    elif not flags and stdin is not None and not stdin.isatty():
        text = stdin.read()
    if text is not None and text.strip():
        try:
            request = json.loads(text)
        except ValueError as e:
            raise WorkerError("E_WORKER_PROTOCOL", f"the request is not valid JSON: {e}") from None
        if not isinstance(request, dict):
            raise WorkerError("E_WORKER_PROTOCOL", "the request must be a JSON object")
    request.update(flags)
    return request


def require(request: dict, key: str, kind: Optional[type] = None) -> Any:
    """A required request field, or E_USAGE naming it."""
    if key not in request or request[key] is None:
        raise WorkerError("E_USAGE", f"the request needs '{key}'")
    value = request[key]
    if kind is not None and not isinstance(value, kind):
        raise WorkerError("E_USAGE", f"'{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def is_oom(error: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, whatever class torch raised them as."""
    name = type(error).__name__
    text = str(error)
    return name == "OutOfMemoryError" or "out of memory" in text.lower() or "DefaultCPUAllocator: can't allocate" in text


Handler = Callable[[dict], Optional[dict]]
