"""Rank 0's side of a data-parallel run: start the ranks through PyTorch's elastic launcher.

The worker the CLI started does not train itself when `num_processes` > 1: it runs
`python -m torch.distributed.run` (torchrun) with `train-rank` as the program, N processes on this
host, or this host's share of several hosts (request `nodes`: count, this node's rank, the
rendezvous endpoint `host:port` of node 0; static rendezvous, so global rank 0 is node 0's first
process). It stays the supervisor of the run:

- events: global rank 0 writes its events on its stdout (torchrun passes it through); this
  process forwards them, and keeps rank 0's `done`/`error` as the run's outcome. Other ranks are
  silent (their stdout is /dev/null), their logs go to stderr (the run's worker log).
- a crashed rank: torchrun stops the others (max restarts 0) and exits non-zero; the run ends with
  E_WORKER_CRASHED unless rank 0 already reported a coded error of its own (diverged, out of memory).
- cancel: torchrun runs in its own session, so the bridge's signals to the run's process group
  reach this process only; the first SIGINT/SIGTERM is passed to torchrun as one SIGTERM, which it
  sends to every rank (each in its own session): they stop together at the next step boundary
  (distributed.Group.any), rank 0 saves a checkpoint. A second signal kills torchrun at once. Should
  this process die (SIGKILL), torchrun gets SIGTERM and stops the ranks; should torchrun die, its
  ranks get SIGKILL (die_with_parent): no rank outlives the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Optional

from .protocol import Cancelled, WorkerError, emit, log

# Set in every rank's environment: `train-rank` without it was started by hand (E_USAGE).
ENV_LAUNCHED = "LORASPEC_LAUNCHED"
# How often torchrun's agent looks at its ranks (a crashed rank is noticed within this).
MONITOR_INTERVAL_S = 0.5
# Rank 0's coded errors that say more than "a rank crashed" (the others are a symptom of it:
# a collective broken by the dead peer, or the SIGTERM torchrun sends to the survivors).
_SYMPTOMS = ("E_INTERNAL", "E_CANCELLED")


def die_with_parent(sig: int) -> None:
    """Linux: this process gets `sig` when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def torchrun_command(request_path: str, nproc: int, nodes: Optional[dict], log_dir: str) -> list[str]:
    """The launcher's command line: one host (`--standalone`) or this host's share of several. Its per-rank files
    go to `log_dir` (the launcher's default is a torchelastic_* folder of its own in the temp folder, never removed)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--max-restarts", "0",
           "--monitor-interval", str(MONITOR_INTERVAL_S), "--log-dir", log_dir]
    count = int(nodes["count"]) if nodes else 1
    if count <= 1:
        cmd.append("--standalone")
    else:
        cmd += ["--nnodes", str(count), "--node-rank", str(int(nodes["rank"])), "--rdzv-backend", "static",
                "--rdzv-endpoint", str(nodes["endpoint"])]
    return cmd + ["-m", "loraspec_worker", "train-rank", request_path]


def check_nodes(nproc: int, nodes: Optional[dict], device_type: str) -> None:
    if nodes and int(nodes.get("count", 1)) > 1:
        if not nodes.get("endpoint"):
            raise WorkerError("E_USAGE", "train request field nodes.endpoint: several hosts need node 0's host:port",
                              hint="set hardware.rendezvous in the contract")
        if not 0 <= int(nodes.get("rank", -1)) < int(nodes["count"]):
            raise WorkerError("E_USAGE", f"train request field nodes.rank: {nodes.get('rank')} is not in 0..{int(nodes['count']) - 1}",
                              hint="set hardware.node_rank to this host's place, 0 on the host of the rendezvous endpoint")
    if device_type == "cuda":
        import torch

        if torch.cuda.device_count() < nproc:
            raise WorkerError("E_USAGE", f"num_processes {nproc} needs {nproc} GPUs; this machine has {torch.cuda.device_count()}",
                              hint="lower hardware.gpus in the contract")


def run_group(request: dict, nproc: int, nodes: Optional[dict], device_type: str) -> dict:
    """Runs the ranks to the end; returns rank 0's result or raises its (or the crash's) error."""
    check_nodes(nproc, nodes, device_type)
    fd, path = tempfile.mkstemp(prefix="loraspec-rank-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(request, f)
    env = dict(os.environ, **{ENV_LAUNCHED: "1"})
    env.setdefault("OMP_NUM_THREADS", "1")
    signalled: list[int] = []
    log_dir = tempfile.mkdtemp(prefix="loraspec-ranks-")  # removed with the request file when the ranks end
    proc = subprocess.Popen(torchrun_command(path, nproc, nodes, log_dir), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            start_new_session=True, preexec_fn=lambda: die_with_parent(signal.SIGTERM))  # noqa: PLW1509

    def forward(signum, _frame=None):  # noqa: ANN001
        signalled.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if len(signalled) == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcome = _relay(proc)
        code = proc.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.unlink(path)
        shutil.rmtree(log_dir, ignore_errors=True)
    return _outcome(outcome, code, bool(signalled), nodes)


def _relay(proc: subprocess.Popen) -> Optional[dict]:
    """Forwards rank 0's events as they come; returns its terminal event (done or error), if any."""
    terminal = None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "type" not in event:
            if line:
                log(f"launcher stdout: {line}")
            continue
        if event["type"] in ("done", "error"):
            terminal = event
        else:
            emit(event)
    return terminal


def _outcome(terminal: Optional[dict], code: int, signalled: bool, nodes: Optional[dict]) -> dict:
    if terminal and terminal["type"] == "done" and code == 0:
        return terminal.get("result") or {}
    if terminal and terminal["type"] == "error" and terminal["code"] not in _SYMPTOMS:
        raise WorkerError(terminal["code"], terminal.get("message", ""), hint=terminal.get("hint"), retryable=terminal.get("retryable"))
    if signalled:
        raise Cancelled("cancelled")
    if code == 0 and terminal is None and nodes and int(nodes.get("rank", 0)) > 0:
        # Another host's share: rank 0 (on node 0) reports and saves.
        return {"processes": int(nodes["count"]), "nodeRank": int(nodes["rank"]), "follower": True}
    if code == 0 and terminal is None:
        raise WorkerError("E_WORKER_CRASHED", "the training ranks ended without rank 0's result; see the worker log", retryable=True)
    seen = f"; rank 0 saw: {terminal.get('message', '')[:300]}" if terminal else ""
    raise WorkerError("E_WORKER_CRASHED", f"a training rank failed (torchrun exited with code {code}){seen}; the worker log names the rank and its error",
                      retryable=True)
