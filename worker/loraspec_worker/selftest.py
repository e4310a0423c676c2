"""`selftest --mode ok|error|crash|sleep`: exercises the protocol without torch (bridge tests, `loraspec doctor`).

ok: one progress event, done.  error: a coded error.  crash: stderr lines then a hard exit (no error
event), as a segfault or a killed process would look.  sleep: progress every 0.1 s until cancelled.
"""

from __future__ import annotations

import os
import sys
import time

from .protocol import WorkerError, emit, log


def run(request: dict) -> dict:
    mode = request.get("mode", "ok")
    emit({"type": "progress", "task": "selftest", "current": 0, "total": 1})
    if mode == "error":
        raise WorkerError("E_DATASET_EMPTY", "selftest: a coded error", hint="nothing to fix")
    if mode == "crash":
        for i in range(3):
            log(f"selftest crash line {i}")
        sys.stderr.flush()
        os._exit(int(request.get("exit_code", 3)))
    if mode == "sleep":
        i = 0
        while True:
            i += 1
            emit({"type": "progress", "task": "selftest", "current": i, "total": 0, "message": f"pid {os.getpid()}"})
            time.sleep(0.1)
    emit({"type": "progress", "task": "selftest", "current": 1, "total": 1})
    return {"mode": mode, "pid": os.getpid(), "echo": request.get("echo")}
