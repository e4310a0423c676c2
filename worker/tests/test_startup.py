"""The worker's start-up stays lazy (issue 22: every second before the first step counts, short runs
pay it in full). Not timed: each test checks, in a fresh process, which modules a step of the train
path has imported, so an eager import that creeps back fails here (bench/startup.py times it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(__file__), "..")

# What the train command's entry (the command table, the train package, parse_config) must not
# import: the heavy libraries wait for the steps that use them (train_once and after).
HEAVY = ("torch", "diffusers", "transformers", "peft", "safetensors", "numpy", "PIL", "scipy", "sklearn")


def run_fresh(script: str) -> tuple[list[str], set[str]]:
    """(the lines `script` printed, sys.modules' names after it) from a fresh interpreter (1 torch thread)."""
    code = script + "\nimport json as _j, sys as _s; print(_j.dumps(sorted(_s.modules)))"
    env = {**os.environ, "PYTHONPATH": WORKER, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    return lines[:-1], set(json.loads(lines[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_the_train_entry_and_its_request_checks_import_no_heavy_library():
    script = (
        "import importlib\n"
        "from loraspec_worker.__main__ import COMMANDS\n"
        "module, func = COMMANDS['train'].split(':')\n"
        "getattr(importlib.import_module(module), func)\n"  # what __main__ does before calling it
        "from loraspec_worker.train.config import parse_config\n"
        "from loraspec_worker.train.dev_request import dev_request\n"
        "parse_config(dev_request(arch='sdxl', base='/nowhere/base', dataset='/nowhere/data', output_dir='/nowhere/out'))\n"
    )
    _, modules = run_fresh(script)
    assert "loraspec_worker.train.runner" in modules and "jsonschema" in modules  # the script did run the checks
    assert heavy_in(modules) == []


def test_a_pipeline_class_imports_only_its_own_arch():
    # The other arches' pipeline modules (and the transformers models they bring) stay unimported.
    script = (
        "from loraspec_worker.train.model import PIPELINES, pipeline_class\n"
        "pipeline_class('sdxl')\n"
        "import sys\n"
        "lazy = sys.modules['diffusers.pipelines']\n"  # diffusers' lazy module: class name -> its submodule
        "import json; print(json.dumps({a: 'diffusers.pipelines.' + lazy._class_to_module[n] for a, n in PIPELINES.items()}))\n"
    )
    printed, modules = run_fresh(script)
    where = json.loads(printed[-1])
    assert where["sdxl"] in modules  # the one asked for is there (the check can see an import)
    others = {a: m for a, m in where.items() if a != "sdxl" and m != where["sdxl"]}
    assert len(others) == len(where) - 1
    assert sorted(m for m in others.values() if m in modules) == []
    assert "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl" not in modules  # Qwen-Image's text encoder


# What a train run has not imported yet when it is ready to load the base (its `load` phase): the model
# stack (transformers' text encoders, peft, diffusers' pipelines, models and loaders) comes with the
# pipeline class in load_pipeline, so the start-up before it is `import torch` and diffusers' core
# (get_scheduler) only. diffusers' core import itself is not ours to shorten (torch._dynamo: bench/RESULTS.md).
NOT_BEFORE_LOAD = ("transformers", "peft", "diffusers.pipelines", "diffusers.models", "diffusers.loaders")


def test_a_train_run_ready_to_load_has_imported_torch_and_diffusers_core_only(tmp_path):
    script = (
        "from loraspec_worker import protocol\n"
        "class AtLoad(Exception): pass\n"
        "emit = protocol.emit\n"
        "def stop_at_load(event):\n"
        "    if event.get('type') == 'phase' and event.get('name') == 'load':\n"
        "        raise AtLoad\n"
        "    emit(event)\n"
        "protocol.emit = stop_at_load\n"  # protocol.phase emits through the module's global
        "from loraspec_worker.train.runner import run\n"
        "from loraspec_worker.train.dev_request import dev_request\n"
        "try:\n"
        f"    run(dev_request(arch='sdxl', base='/nowhere/base', dataset='/nowhere/data', output_dir={str(tmp_path)!r}, device='cpu'))\n"
        "except AtLoad:\n"
        "    print('at load')\n"
    )
    printed, modules = run_fresh(script)
    assert printed[-1:] == ["at load"] and {"torch", "diffusers.optimization"} <= modules  # the run got there
    early = sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in NOT_BEFORE_LOAD))
    assert early == [], f"imported before the load phase: {early[:20]}"


def test_the_cuda_context_thread_starts_only_for_a_cuda_run_and_never_raises():
    # train_once creates the CUDA context in a thread while diffusers imports (issue 22's start-up);
    # a CPU run starts none, and a CUDA run on a machine without CUDA leaves the error to the main thread.
    from loraspec_worker.train.dev_request import dev_config
    from loraspec_worker.train.model import start_cuda_context

    assert start_cuda_context(dev_config(arch="sdxl", device="cpu")) is None
    for device in (None, "cuda", "cuda:1"):
        thread = start_cuda_context(dev_config(arch="sdxl", **({"device": device} if device else {})))
        assert thread is not None and thread.daemon
        thread.join(timeout=60)
        assert not thread.is_alive()
