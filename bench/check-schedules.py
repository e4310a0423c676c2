"""Checks loraspec's schedule model (packages/core/src/trainers/lr-schedules.ts) against real code.

Reads packages/core/test/compile/golden/schedules/cases.json (the options loraspec compiles for
each trainer and the LR factors its model predicts) and recomputes every factor by stepping a real
scheduler on a one-parameter optimizer, the way the trainer does:

- always: the library functions the trainers call (transformers' TYPE_TO_SCHEDULER_FUNCTION as
  sd-scripts' get_scheduler_fix calls it; torch's ConstantLR/LinearLR/CosineAnnealingLR and
  diffusers' get_constant_schedule_with_warmup as ai-toolkit's get_lr_scheduler builds them);
- with --sd-scripts DIR: get_scheduler_fix itself, read from that checkout's
  library/train_util.py (the function's source only, run with the names it uses);
- with --ai-toolkit DIR: get_lr_scheduler itself, imported from that checkout's toolkit/scheduler.py.

Nothing is downloaded; the checkouts are read, never modified or copied here.
Usage: worker/.venv/bin/python bench/check-schedules.py [--sd-scripts DIR] [--ai-toolkit DIR]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "packages/core/test/compile/golden/schedules/cases.json"
TOLERANCE = 1e-6


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def _load_get_scheduler_fix(sd_scripts: Path):
    """get_scheduler_fix from the checkout's train_util.py, without importing the module's heavy deps."""
    source = (sd_scripts / "library" / "train_util.py").read_text()
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_scheduler_fix")
    import transformers
    from diffusers.optimization import SchedulerType as DiffusersSchedulerType
    from diffusers.optimization import TYPE_TO_SCHEDULER_FUNCTION as DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION
    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION, SchedulerType

    names = {
        "ast": ast, "torch": torch, "transformers": transformers, "importlib": importlib, "Optimizer": torch.optim.Optimizer,
        "Optional": __import__("typing").Optional, "logger": logging.getLogger("sd-scripts"),
        "SchedulerType": SchedulerType, "TYPE_TO_SCHEDULER_FUNCTION": TYPE_TO_SCHEDULER_FUNCTION,
        "DiffusersSchedulerType": DiffusersSchedulerType, "DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION": DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION,
        "is_schedulefree_optimizer": lambda optimizer, args: False,
    }
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(sd_scripts / "library/train_util.py"), "exec"), names)
    return names["get_scheduler_fix"], f"{sd_scripts}/library/train_util.py:{fn.lineno}"


def kohya_factors(case, get_scheduler_fix):
    """sd-scripts: built by get_scheduler_fix, stepped num_processes times per update (accelerate)."""
    opts, c = case["options"], case["contract"]
    args = SimpleNamespace(
        lr_scheduler=opts.get("lr_scheduler", "constant"), max_train_steps=c["steps"], lr_warmup_steps=opts.get("lr_warmup_steps", 0),
        lr_decay_steps=0, lr_scheduler_num_cycles=1, lr_scheduler_power=1, lr_scheduler_timescale=None, lr_scheduler_min_lr_ratio=None,
        lr_scheduler_args=None, lr_scheduler_type="",
    )
    opt = _optimizer()
    if get_scheduler_fix is not None:
        sched = get_scheduler_fix(args, opt, c["gpus"])
    else:  # what get_scheduler_fix does for these four names (train_util.py L5274, L5329-5377)
        from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION, SchedulerType

        name = SchedulerType(args.lr_scheduler)
        fn = TYPE_TO_SCHEDULER_FUNCTION[name]
        total = args.max_train_steps * c["gpus"]
        if name == SchedulerType.CONSTANT:
            sched = fn(opt)
        elif name == SchedulerType.CONSTANT_WITH_WARMUP:
            sched = fn(opt, num_warmup_steps=args.lr_warmup_steps)
        else:
            sched = fn(opt, num_warmup_steps=args.lr_warmup_steps, num_training_steps=total)
    return _run(sched, opt, c["steps"], per_update=c["gpus"])


def aitk_factors(case, get_lr_scheduler):
    """ai-toolkit: get_lr_scheduler(name, opt, **params, total_iters=steps); step(0) at start, step() per update."""
    opts, c = case["options"], case["contract"]
    params = dict(opts.get("lr_scheduler_params", {}))
    params["total_iters"] = c["steps"]  # BaseSDTrainProcess.py L2234-2235
    opt = _optimizer()
    sched = get_lr_scheduler(opts.get("lr_scheduler", "constant"), opt, **params)
    return _run(sched, opt, c["steps"], per_update=1, start_with_step0=True)


def _run(sched, opt, steps, per_update, start_with_step0=False):
    import warnings

    if start_with_step0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched.step(0)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: a no-op, in the order torch expects
        for _ in range(per_update):
            sched.step()
    return out


def _library_get_lr_scheduler(name, optimizer, **kwargs):
    """What ai-toolkit's toolkit/scheduler.py does for the names loraspec writes (L11-44)."""
    from diffusers.optimization import get_constant_schedule_with_warmup

    if name == "cosine":
        kwargs["T_max"] = kwargs.pop("total_iters")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **kwargs)
    if name == "constant":
        kwargs.setdefault("factor", 1.0)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, **kwargs)
    if name == "linear":
        return torch.optim.lr_scheduler.LinearLR(optimizer, **kwargs)
    if name == "constant_with_warmup":
        kwargs.setdefault("num_warmup_steps", 1000)
        del kwargs["total_iters"]
        return get_constant_schedule_with_warmup(optimizer, **kwargs)
    raise ValueError(name)


def check(sd_scripts: Path | None = None, ai_toolkit: Path | None = None) -> list[str]:
    cases = json.loads(CASES.read_text())
    get_fix, where_fix = _load_get_scheduler_fix(sd_scripts) if sd_scripts else (None, "transformers functions")
    if ai_toolkit:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_load import load_by_path

        module = load_by_path("aitk_scheduler", ai_toolkit / "toolkit" / "scheduler.py")
        get_lr, where_lr = module.get_lr_scheduler, f"{ai_toolkit}/toolkit/scheduler.py"
    else:
        get_lr, where_lr = _library_get_lr_scheduler, "torch/diffusers schedulers"
    problems = []
    for case in cases:
        lrs = kohya_factors(case, get_fix) if case["trainer"] == "kohya" else aitk_factors(case, get_lr)
        for step, want in case["factors"]:
            if abs(lrs[step] - want) > TOLERANCE:
                problems.append(f"{case['trainer']} {case['contract']} step {step}: model {want}, real {lrs[step]:.9f}")
    print(f"{len(cases)} cases: sd-scripts via {where_fix}; ai-toolkit via {where_lr}; {len(problems)} mismatches")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path)
    parser.add_argument("--ai-toolkit", type=Path)
    a = parser.parse_args()
    torch.set_num_threads(1)
    problems = check(a.sd_scripts, a.ai_toolkit)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
