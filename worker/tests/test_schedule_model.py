"""loraspec's schedule model (core trainers/lr-schedules.ts) against the real schedulers.

The TS test writes the compiled options and modelled LR factors to a golden; bench/check-schedules.py
steps real torch/transformers/diffusers schedulers the way sd-scripts and ai-toolkit do. With the
trainers' checkouts (LORASPEC_SD_SCRIPTS_DIR / LORASPEC_AI_TOOLKIT_DIR) it calls their own functions.
"""

import os
from pathlib import Path

import pytest
import torch

import bench_script

check_schedules = bench_script.load("check-schedules.py")


def _dir(name):
    value = os.environ.get(name)
    return Path(value) if value else None


def test_model_matches_the_real_schedulers():
    torch.set_num_threads(1)
    assert check_schedules.check(_dir("LORASPEC_SD_SCRIPTS_DIR"), _dir("LORASPEC_AI_TOOLKIT_DIR")) == []


def test_the_issue_defects_are_real():
    # ai-toolkit's linear (torch LinearLR defaults) rises from 1/3 of the LR; the model's compiled
    # options make it decay, and an unscaled sd-scripts warm-up on 2 GPUs is half as long.
    opt = check_schedules._optimizer()
    sched = check_schedules._library_get_lr_scheduler("linear", opt, total_iters=1300)
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 3)
    lrs = check_schedules._run(sched, opt, 1300, per_update=1)
    assert lrs[-1] == pytest.approx(1.0, abs=1e-3)
    case = {"options": {"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 100}, "contract": {"steps": 1300, "gpus": 2}}
    assert check_schedules.kohya_factors(case, None)[50] == pytest.approx(1.0)
