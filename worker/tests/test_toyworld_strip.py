"""Issue 21: the sample strip shows the character appearing. The session's good txcl LoRA
(conftest.py) renders rubric.STRIP_SAMPLES while it trains: the trigger prompt on the dataset's
three backgrounds x seeds 1-3, at step 0 (samples.first: the base, the LoRA still zero) and after
the last step (300). The judge reads each PNG as the toy tests read the character: cyan on the
object (the toy base draws shapes as soft blobs, so the cross is reported, not asserted).

Measured (bench/RESULTS.md, "The sample strip"): cyan in 0 of 9 at step 0 (the base draws the
unknown word pink or purple), 8-9 of 9 at step 300. Thresholds with margin: at most 2 of 9 at
step 0, at least 6 of 9 at the end.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

from toyworld import rubric, world
from toyworld.judge import Judge

FIRST_AT_MOST = 0.2
LAST_AT_LEAST = 0.6


def strip_reads(lora: str) -> dict[int, list[dict]]:
    """{step: the judge's reads of that step's samples}, from the PNGs the run wrote beside its LoRA."""
    paths = sorted(glob.glob(os.path.join(os.path.dirname(lora), "samples", "step-*.png")))
    reads = Judge(rubric.JUDGE).read(paths)
    by_step: dict[int, list[dict]] = {}
    for path, read in zip(paths, reads):
        step = int(re.match(r"step-(\d+)-", os.path.basename(path)).group(1))
        by_step.setdefault(step, []).append(read)
    return by_step


@pytest.mark.slow
def test_the_strip_shows_the_character_appearing(good_txcl_lora):
    by_step = strip_reads(good_txcl_lora)
    per_column = len(rubric.STRIP_PROMPTS) * len(rubric.STRIP_SAMPLES["seeds"])
    assert sorted(by_step) == [0, 300] and all(len(r) == per_column for r in by_step.values()), {k: len(v) for k, v in by_step.items()}

    def share(reads, test):
        return sum(map(test, reads)) / len(reads)

    cyan = {step: share(reads, lambda r: world.CHARACTER["colour"] in r["colours"]) for step, reads in by_step.items()}
    cross = {step: share(reads, lambda r: world.CHARACTER["shape"] in r["shapes"]) for step, reads in by_step.items()}
    print(f"strip ({per_column} samples a column): cyan at step 0 {cyan[0]:.2f}, at step 300 {cyan[300]:.2f}; "
          f"cross read at step 0 {cross[0]:.2f}, at step 300 {cross[300]:.2f}")
    assert cyan[0] <= FIRST_AT_MOST, by_step[0]
    assert cyan[300] >= LAST_AT_LEAST, by_step[300]
