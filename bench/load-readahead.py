"""The base's weights read ahead while the worker imports (issue 22: a user waits for the whole run, and a cold
page cache makes the load wait on the disk after the imports have waited on the CPU).

One diffusers SDXL folder on disk with the full-size UNet (SDXL's published config, 2.57 B parameters in bf16:
5.1 GB; random bits, so nothing compresses) beside the tiny base's other components. Each sample is a fresh process
doing what the worker's `train` does up to the end of its load: the read-ahead (train/readahead.py) or not, `import
torch`, diffusers' scheduler module (as train_once), then train/model.py load_pipeline (from_pretrained, the real
loader, which maps the files) and a copy of every weight, standing in for the worker's pipe.to(device), which is
where the mapped pages are first read. Before each, the page cache is dropped (`echo 1 > /proc/sys/vm/drop_caches`, root only; without it the
bench says so and times warm reads, which it cannot compare). Variants interleaved, median of --n each:

  off   the loader reads the files when it gets to them;
  on    train/readahead.start(base) first, as train_once does.

  OMP_NUM_THREADS=1 worker/.venv/bin/python bench/load-readahead.py [--n 3] [--dir /tmp/loraspec-readahead] [--write] [--warm]
--warm keeps the page cache (every file read once first): what the read-ahead costs a run whose weights are already
in memory (it reads them again from the cache).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "worker"))
sys.path.insert(0, str(ROOT / "bench"))
from results_md import put_section  # noqa: E402

CHILD = """
import sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, {worker!r})
from loraspec_worker.train import readahead
if {on}:
    readahead.start({base!r})
import torch
from diffusers.optimization import get_scheduler
t_imports = time.perf_counter()
from loraspec_worker.train.model import load_pipeline
pipe = load_pipeline({base!r}, "sdxl", torch.bfloat16)
# from_pretrained maps the safetensors files and reads their pages when the weights are first touched: the worker's
# pipe.to(device) right after (setup.load_and_cache). Here, without a GPU, a copy of every weight stands in for it.
for module in pipe.components.values():
    for p in getattr(module, "parameters", lambda: [])():
        p.data = p.data.clone()
t_load = time.perf_counter()
print(json.dumps({{"imports_s": t_imports - t0, "load_s": t_load - t_imports, "total_s": t_load - t0, "unet_params": sum(p.numel() for p in pipe.unet.parameters())}}))
"""


def build_folder(folder: Path) -> int:
    """The tiny SDXL base saved, its UNet replaced by a full-size one of random bits. Returns the weight bytes."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from gpu_speed_configs import SDXL_UNET
    from loraspec_worker import tiny_base

    unet_file = folder / "unet" / "diffusion_pytorch_model.safetensors"
    if not unet_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tiny_base.build_sdxl(0).save_pretrained(str(folder))
        with torch.device("meta"):
            unet = UNet2DConditionModel(**SDXL_UNET)
        unet.save_config(str(folder / "unet"))
        generator = torch.Generator().manual_seed(0)
        tensors = {}
        for name, p in unet.state_dict().items():
            t = torch.empty(p.shape, dtype=torch.int16)
            t.random_(-32768, 32767, generator=generator)
            tensors[name] = t.view(torch.bfloat16)
        save_file(tensors, str(unet_file) + ".tmp")
        os.replace(str(unet_file) + ".tmp", unet_file)
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors"))


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def sample(base: Path, on: bool) -> dict:
    code = CHILD.format(worker=str(ROOT / "worker"), base=str(base), on=on)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/loraspec-readahead")
    ap.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    ap.add_argument("--warm", action="store_true", help="keep the page cache (the files read once before): what the read-ahead costs a second run")
    args = ap.parse_args()
    base = Path(args.dir)
    weight_bytes = build_folder(base)
    cold = False if args.warm else drop_caches()
    if args.warm:
        sample(base, False)  # every file in the page cache
    rows = {"off": [], "on": []}
    for _ in range(args.n):
        for variant in ("off", "on"):
            if cold:
                drop_caches()
            rows[variant].append(sample(base, variant == "on"))
            print(variant, json.dumps(rows[variant][-1]), flush=True)
    med = {v: {k: statistics.median(r[k] for r in rs) for k in ("imports_s", "load_s", "total_s")} for v, rs in rows.items()}
    result = {"date": datetime.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "cold_page_cache": cold, "weight_gb": round(weight_bytes / 1e9, 2), "n": args.n, "median": med, "rows": rows,
              "ratio_total_on_over_off": med["on"]["total_s"] / med["off"]["total_s"]}
    print(json.dumps(result))
    if args.write:
        write_results(result)


DATA = ROOT / "bench" / "data" / "load-readahead.jsonl"


def write_results(r: dict) -> None:
    """Appends the run to bench/data/load-readahead.jsonl and writes the latest cold and warm runs' table."""
    with open(DATA, "a") as f:
        f.write(json.dumps(r) + "\n")
    runs = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    latest = {run["cold_page_cache"]: run for run in runs}
    lines = ["<!-- load-readahead:start (written by bench/load-readahead.py) -->", "## Weights read ahead while the worker imports", "",
             "Script: `OMP_NUM_THREADS=1 worker/.venv/bin/python bench/load-readahead.py --n N --write [--warm]`: an SDXL diffusers folder "
             "with the full-size UNet beside the tiny base's other components, each sample a fresh process doing what `train` does "
             "to the end of its load (the read-ahead of train/readahead.py or not, the imports, load_pipeline, a copy of every "
             "weight standing in for pipe.to(device)); variants interleaved; raw runs in bench/data/load-readahead.jsonl.", "",
             "| page cache | date, machine | weights GB | n | imports s (off / on) | load s (off / on) | imports + load s (off / on) | on / off |",
             "|---|---|---|---|---|---|---|---|"]
    for cold in (True, False):
        run = latest.get(cold)
        if run is None:
            continue
        m = run["median"]
        lines.append(f"| {'dropped before each process' if cold else 'warm (the files read before)'} | {run['date']}, {run['machine']} | {run['weight_gb']} | {run['n']} | "
                     f"{m['off']['imports_s']:.2f} / {m['on']['imports_s']:.2f} | {m['off']['load_s']:.2f} / {m['on']['load_s']:.2f} | "
                     f"{m['off']['total_s']:.2f} / {m['on']['total_s']:.2f} | **{run['ratio_total_on_over_off']:.2f}** |")
    lines.append("<!-- load-readahead:end -->")
    put_section(ROOT / "bench" / "RESULTS.md", "<!-- load-readahead:start", "<!-- load-readahead:end -->", "\n".join(lines))


if __name__ == "__main__":
    main()
