"""The worker's start-up (issue 22): what `loraspec train` pays before its first step, per fresh process.

Each sample is the worker's own `train` command in a fresh process (as `loraspec train` starts it) on a
tiny SDXL base (2 images, 32 px, 2 steps, CPU): start-up = the first phase event's `at` (the result's
timing.startup_s, as bench/gpu-wholerun.py reports it: from the worker's clock start, the protocol
import, through the imports, the request checks and the levers), load = the load phase (the pipeline's
imports and its weights), and the process wall time. Median of --n processes per variant, variants
interleaved in one run so a ratio compares like with like:

  lazy      this tree: pipeline_class looks up only the run's arch;
  eager     main before this change: every arch's pipeline class looked up for any run (train/model.py's
            old dict), patched in for the child;
  --wheels DIR adds two variants with the carried-wheel set-up of the GPU machines (device README:
  `pip install --no-compile --target /tmp/site`, here with PYTHONDONTWRITEBYTECODE=1 so nothing writes
  .pyc): `nopyc` (every process compiles diffusers / transformers / peft / jsonschema from source) and
  `pyc` (the same folder after `python -m compileall`, as pip's default install leaves it).
Also, per round, the lazy and the eager SDXL pipeline-class lookup alone in a fresh process (diffusers
already imported): the part of load the change touches, without the rest of the run's noise.

--floor asks what the worker imports beyond need before its first step: one run records sys.modules at its
`train` phase (the first step next), then per round three import-only processes: `worker set` imports those
modules again in their order, `floor` imports only what an SDXL run loads and trains with, by module path
(FLOOR below), `floor+pipeline` adds StableDiffusionXLPipeline (the worker loads, encodes captions and samples
through it). worker set / floor+pipeline near 1 means nothing the worker's own code imports is left to defer;
floor+pipeline / floor is what loading through the pipeline class costs in imports. --importtime FILE writes one train
process's `python -X importtime` to FILE and prints its largest imports (the GPU host's breakdown in one call).

  OMP_NUM_THREADS=1 worker/.venv/bin/python bench/startup.py [--n 5] [--wheels .whl] [--floor] [--importtime FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "worker"
WHEELS = ("diffusers", "transformers", "peft", "jsonschema")  # what the worker imports that the GPU machines carry
# The classes a tiny-SDXL train run loads and trains with (model_index.json's components, the training scheduler,
# the optimizer's scheduler, the LoRA, the images, the LoRA file), each from its own module: the least any SDXL
# trainer on these libraries imports.
FLOOR = (
    "import torch",
    "from diffusers.optimization import get_scheduler",
    "from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel",
    "from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL",
    "from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler",
    "from diffusers.schedulers.scheduling_ddpm import DDPMScheduler",
    "from transformers.models.clip.modeling_clip import CLIPTextModel, CLIPTextModelWithProjection",
    "from transformers.models.clip.tokenization_clip import CLIPTokenizer",
    "from peft import LoraConfig",
    "from PIL import Image",
    "from safetensors.torch import save_file",
)


def child(request_path: str, eager: bool) -> int:
    """One run in this process: the worker's `train` command; `eager` puts back main's eager lookup."""
    sys.path.insert(0, str(WORKER))
    from loraspec_worker.__main__ import main as worker_main

    if eager:
        from loraspec_worker.train import model

        def eager_pipeline_class(arch: str):
            import diffusers

            return {a: getattr(diffusers, name) for a, name in model.PIPELINES.items()}[arch]

        model.pipeline_class = eager_pipeline_class
    return worker_main(["train", request_path])


def lookup_child(eager: bool) -> int:
    """Prints the seconds of the SDXL pipeline-class lookup alone, diffusers already imported: the
    part of load that `eager` changes, without the run's noise around it."""
    sys.path.insert(0, str(WORKER))
    import diffusers.optimization  # noqa: F401 - imported before load in a run (train_once)
    from loraspec_worker.train import model

    t = time.perf_counter()
    if eager:
        import diffusers

        {a: getattr(diffusers, name) for a, name in model.PIPELINES.items()}["sdxl"]
    else:
        model.pipeline_class("sdxl")
    print(json.dumps({"lookup_s": time.perf_counter() - t}))
    return 0


def modules_child(request_path: str, out_path: str) -> int:
    """Runs the worker's `train` and writes sys.modules' names, in import order, as its `train` phase is
    emitted (everything before the first step is imported by then)."""
    sys.path.insert(0, str(WORKER))
    from loraspec_worker import protocol
    from loraspec_worker.__main__ import main as worker_main

    emit = protocol.emit

    def recording_emit(event: dict) -> None:
        if event.get("type") == "phase" and event.get("name") == "train":
            Path(out_path).write_text(json.dumps(list(sys.modules)))
        emit(event)

    protocol.emit = recording_emit  # protocol.phase emits through the module's global
    return worker_main(["train", request_path])


def import_child(what: str) -> int:
    """Prints the seconds to import `what` and how many modules that left in sys.modules: "floor" (FLOOR's
    statements), "floor+pipeline" (and the SDXL pipeline class), or a file of recorded module names (in order)."""
    import importlib

    sys.path.insert(0, str(WORKER))
    before = len(sys.modules)
    t = time.perf_counter()
    if what not in ("floor", "floor+pipeline"):
        for name in json.loads(Path(what).read_text()):
            if name not in sys.modules:
                try:
                    importlib.import_module(name)
                except Exception:  # noqa: BLE001 - a name some module put in sys.modules by hand (`__mp_main__`, aliases)
                    pass
    else:
        for statement in FLOOR + (("from diffusers import StableDiffusionXLPipeline",) if what == "floor+pipeline" else ()):
            exec(statement, {})  # noqa: S102 - the fixed statements above
    print(json.dumps({"import_s": time.perf_counter() - t, "modules": len(sys.modules) - before}))
    return 0


def imports(what: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--import-child", what], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"the import child failed (rc {out.returncode}): {out.stderr[-1500:]}")
    return json.loads(out.stdout.splitlines()[-1])


def importtime(request: Path, out_file: str, top: int = 25) -> None:
    """One train process under `python -X importtime`: the raw tree to `out_file`, and the largest imports
    (cumulative, each an import statement the process or one of its functions ran) and packages (summed self time)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-X", "importtime", __file__, "--child", str(request)], capture_output=True, text=True, env=env, timeout=300)
    Path(out_file).write_text(out.stderr)
    rows = []
    for line in out.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            name = parts[2].rstrip()
            rows.append((int(parts[0]), int(parts[1]), (len(name) - len(name.lstrip())) // 2, name.strip()))
    print(f"-X importtime of one train process ({len(rows)} modules, {sum(r[0] for r in rows) / 1e6:.2f} s of self time; raw: {out_file})")
    for self_us, cum_us, depth, name in sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:top]:
        print(f"  {cum_us / 1e6:6.3f} s  {name}")
    packages: dict[str, int] = {}
    for self_us, _, _, name in rows:
        head = name.split(".")
        key = ".".join(head[:2]) if head[0] in ("torch", "diffusers", "transformers") else head[0]
        packages[key] = packages.get(key, 0) + self_us
    print("  self time by package: " + ", ".join(f"{k} {v / 1e6:.2f}" for k, v in sorted(packages.items(), key=lambda kv: -kv[1])[:12]))


def make_inputs(work: Path) -> Path:
    """A tiny SDXL base, a 2-image dataset and a request (built once, in this process)."""
    sys.path[:0] = [str(WORKER), str(WORKER / "tests")]
    from loraspec_worker import tiny_base
    from loraspec_worker.train.dev_request import dev_request
    from noise_dataset import write_noise_dataset

    tiny_base.make_tiny_base("sdxl", str(work / "base"))
    write_noise_dataset(work / "data", 2, (32, 32))
    request = dev_request(arch="sdxl", base=str(work / "base"), dataset=str(work / "data"), output_dir=str(work / "out"), resolution=32,
                          steps=2, rank=4, alpha=4, precision="fp32", max_sequence_length=32, device="cpu")
    path = work / "request.json"
    path.write_text(json.dumps(request))
    return path


def sample(request: Path, eager: bool, site: str | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if site:
        env.update(PYTHONPATH=site, PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", str(request)] + (["--eager"] if eager else []),
                         capture_output=True, text=True, env=env, timeout=300)
    wall = time.perf_counter() - t0
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    done = next((e for e in events if e["type"] == "done"), None)
    if done is None:
        raise SystemExit(f"the worker failed (rc {out.returncode}): {out.stderr[-1500:]}")
    t = done["result"]["timing"]
    return {"startup_s": t["startup_s"], "load_s": t["load_s"], "wall_s": wall}


def lookup(eager: bool) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--lookup"] + (["--eager"] if eager else []), capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"the lookup failed (rc {out.returncode}): {out.stderr[-1500:]}")
    return json.loads(out.stdout.splitlines()[-1])["lookup_s"]


def install(wheels: Path, target: Path, compiled: bool) -> None:
    files = [str(p) for name in WHEELS for p in sorted(wheels.glob(f"{name}-*.whl"))]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                    "--target", str(target), *files], check=True)
    if compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(target)], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=5, help="fresh processes per variant")
    ap.add_argument("--wheels", help="a folder of carried wheels (diffusers, transformers, peft, jsonschema): adds nopyc / pyc")
    ap.add_argument("--lookup", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--floor", action="store_true", help="adds the worker's import set before its first step against FLOOR's")
    ap.add_argument("--importtime", metavar="FILE", help="writes one train process's -X importtime to FILE and prints its largest imports")
    ap.add_argument("--modules-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--import-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.modules_child:
        sys.exit(modules_child(*args.modules_child))
    if args.import_child:
        sys.exit(import_child(args.import_child))
    if args.lookup:
        sys.exit(lookup_child(args.eager))
    if args.child:
        sys.exit(child(args.child, args.eager))
    work = Path(tempfile.mkdtemp(prefix="loraspec-startup-"))
    request = make_inputs(work)
    variants = {"lazy": (False, None), "eager": (True, None)}
    if args.wheels:
        for name, compiled in (("nopyc", False), ("pyc", True)):
            install(Path(args.wheels), work / name, compiled)
            variants[name] = (False, str(work / name))
    runs: dict[str, list[dict]] = {k: [] for k in variants}
    sample(request, False, None)  # one unmeasured run: the page cache holds torch's files for every variant alike
    if args.importtime:
        importtime(request, args.importtime)
    recorded = work / "modules-at-train.json"
    if args.floor:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run([sys.executable, __file__, "--modules-child", str(request), str(recorded)], capture_output=True, env=env, timeout=300, check=True)
    lookups: dict[str, list[float]] = {"lazy": [], "eager": []}
    sets: dict[str, list[dict]] = {"worker set": [], "floor+pipeline": [], "floor": []}
    for _ in range(args.n):
        for name, (eager, site) in variants.items():
            runs[name].append(sample(request, eager, site))
        for name in lookups:
            lookups[name].append(lookup(name == "eager"))
        if args.floor:
            sets["worker set"].append(imports(str(recorded)))
            sets["floor+pipeline"].append(imports("floor+pipeline"))
            sets["floor"].append(imports("floor"))
    med = {k: {m: statistics.median(r[m] for r in rs) for m in ("startup_s", "load_s", "wall_s")} for k, rs in runs.items()}
    print(f"{time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()} ({os.cpu_count()} cores), python {platform.python_version()}, "
          f"median of {args.n} fresh processes each (tiny SDXL, CPU, 1 torch thread)")
    for k, m in med.items():
        print(f"  {k:6s} start-up {m['startup_s']:.3f} s  load {m['load_s']:.3f} s  start-up+load {m['startup_s'] + m['load_s']:.3f} s  process wall {m['wall_s']:.3f} s")
    pairs = [("lazy", "eager")] + ([("pyc", "nopyc")] if args.wheels else [])
    for new, old in pairs:
        a, b = med[new], med[old]
        print(f"  {new}/{old}: start-up+load {(a['startup_s'] + a['load_s']) / (b['startup_s'] + b['load_s']):.3f}, "
              f"process wall {a['wall_s'] / b['wall_s']:.3f} ({a['wall_s'] - b['wall_s']:+.3f} s)")
    lazy, eager = (statistics.median(lookups[k]) for k in ("lazy", "eager"))
    print(f"  the SDXL pipeline-class lookup alone (diffusers imported): lazy {lazy:.3f} s, eager {eager:.3f} s, lazy/eager {lazy / eager:.3f}")
    if args.floor:
        med = {k: statistics.median(r["import_s"] for r in rs) for k, rs in sets.items()}
        print("  imports before the first step, import-only processes: "
              + ", ".join(f"{k} {med[k]:.3f} s ({rs[0]['modules']} modules)" for k, rs in sets.items()))
        print(f"  worker set / floor+pipeline {med['worker set'] / med['floor+pipeline']:.3f}, floor+pipeline / floor {med['floor+pipeline'] / med['floor']:.3f}, "
              f"worker set / floor {med['worker set'] / med['floor']:.3f}")


if __name__ == "__main__":
    main()
