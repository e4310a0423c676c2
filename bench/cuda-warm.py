"""cuBLAS and cuDNN loaded while the worker imports diffusers? (issue 22: a user waits for the whole run)

The worker creates its CUDA context in a thread beside diffusers' import (train/model.py start_cuda_context); the
first matmul and the first convolution of the run (the text encoders' and the VAE's, in the cache phase) then load
cuBLAS/cuBLASLt and cuDNN on the main thread. The lever tried: load them in that thread too (a 16x16 bf16 matmul and
a 3x3 convolution after the context). Measured on an H100 host (2026-12-06): the first work 0.209 -> 0.017 s, but the
import 0.17 s slower beside it, 0.99 of the time to the first work done; not taken into the worker (bench/RESULTS.md,
"Weights read ahead while the worker imports"). Each sample is a fresh
process doing what train_once does up to its first GPU work: `import torch`, the thread started, diffusers' import
(`from diffusers.optimization import get_scheduler`, as train_once), the thread joined, then a VAE-like first
convolution (fp32, 3 -> 128 channels at 1024x1024) and a text-encoder-like bf16 matmul, synchronized. Variants
interleaved, median of --n each:

  context     the thread creates the context only (the worker);
  libraries   the context, then the matmul and the convolution (the lever).

The figure is the process's time to its first GPU work done (`first_done_s`) and its parts: the import, the wait
for the thread after it (`join_s`), the first work itself (`first_ops_s`).

  PYTHONPATH=<diffusers> python3 bench/cuda-warm.py [--n 5] [--out bench/data/cuda-warm-<card>-<date>.jsonl]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys


CHILD = """
import sys, threading, time, json
t0 = time.perf_counter()
import torch
mode = {mode!r}
device = torch.device("cuda", 0)
def create():
    torch.empty(1, device=device)
    if mode == "libraries":
        a = torch.ones(16, 16, device=device, dtype=torch.bfloat16)
        a @ a
        x = torch.ones(1, 4, 8, 8, device=device)
        torch.nn.functional.conv2d(x, torch.ones(4, 4, 3, 3, device=device), padding=1)
        torch.cuda.synchronize(device)
thread = threading.Thread(target=create, daemon=True)
thread.start()
t_torch = time.perf_counter()
from diffusers.optimization import get_scheduler
t_import = time.perf_counter()
thread.join()
t_join = time.perf_counter()
x = torch.randn(1, 3, 1024, 1024, device=device)
y = torch.nn.functional.conv2d(x, torch.randn(128, 3, 3, 3, device=device), padding=1)
h = torch.randn(77, 768, device=device, dtype=torch.bfloat16) @ torch.randn(768, 768, device=device, dtype=torch.bfloat16)
torch.cuda.synchronize(device)
t_first = time.perf_counter()
print(json.dumps({{"mode": mode, "torch_s": t_torch - t0, "import_s": t_import - t_torch, "join_s": t_join - t_import,
                  "first_ops_s": t_first - t_join, "first_done_s": t_first - t0}}))
"""


def sample(mode: str) -> dict:
    code = CHILD.format(mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--out", default=None, help="a jsonl: one row per sample, then the summary row")
    a = ap.parse_args()
    import torch

    card = torch.cuda.get_device_name(0)
    sample("context")  # the first process of a fresh machine reads the libraries from disk: not a variant's figure
    rows = [dict(sample(mode), card=card, date=datetime.date.today().isoformat()) for _ in range(a.n) for mode in ("context", "libraries")]
    med = {m: {k: statistics.median(r[k] for r in rows if r["mode"] == m) for k in ("torch_s", "import_s", "join_s", "first_ops_s", "first_done_s")}
           for m in ("context", "libraries")}
    summary = {"summary": med, "ratio_first_done": med["libraries"]["first_done_s"] / med["context"]["first_done_s"], "n": a.n, "card": card}
    for m in ("context", "libraries"):
        print(f"| {card} | {m} | " + " | ".join(f"{med[m][k]:.3f}" for k in ("torch_s", "import_s", "join_s", "first_ops_s", "first_done_s")) + " |")
    print(json.dumps(summary))
    if a.out:
        with open(a.out, "a") as f:
            for r in rows + [summary]:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
