"""Issue 10's rubric test, on the CPU: LoRAs made good or bad on purpose on the toy SDXL base
(toyworld/rubric.py), each checked by `loraspec validate` (the built CLI, the judge as the
embedding model). The good one passes; the unbound-trigger one (captions without the trigger)
fails check 1 on the leak measure; the mode-collapse one (near-identical images captioned with
poses they do not show) fails check 2 on sameness (its variations as alike as its training images);
the overfit one (one background, over-trained) fails check 3 on scenes swapped (novel scenes drawn
as its training scene). Figures on two seed sets: bench/RESULTS.md, "The rubric on four LoRAs";
`PYTHONPATH=worker python -m toyworld rubric` trains and validates all four.
"""

from __future__ import annotations

import io
import os

import pytest

from loraspec_worker import protocol
from toyworld import rubric

BUILT = os.path.exists(os.path.join(rubric.REPO, "dist", "cli.mjs"))


@pytest.fixture(scope="module")
def rows(tmp_path_factory, good_txcl_lora):
    if not BUILT:
        pytest.skip("the CLI is not built (npm run build)")
    before, protocol._out = protocol._out, io.StringIO()  # the trainer's events are not this test's output
    try:
        # the good LoRA is the session's (conftest.py: trained once, with training seed 1, as the others here)
        return rubric.run(str(tmp_path_factory.mktemp("rubric")), train_seed=1, seeds=(1, 2), variants=rubric.VARIANTS,
                          trained={"good": good_txcl_lora})
    finally:
        protocol._out = before


@pytest.mark.slow
@pytest.mark.parametrize("variant", rubric.VARIANTS, ids=lambda v: v.name)
def test_validate_passes_the_good_lora_and_fails_the_bad_one_on_its_check(rows, variant):
    row = rows[variant.name]
    print(variant.name, row)
    if variant.fails is None:
        # exit 0 and no check failing (a measure near its line may warn: the CLI passes warn)
        assert row["exit_code"] == 0 and row["status"] in ("pass", "warn"), row
        assert "fail" not in row["checks"].values(), row
        return
    assert row["status"] == "fail" and row["exit_code"] == 1, row
    assert row["checks"][variant.fails] == "fail", row
    assert row["measures"][variant.measure][1] == "fail", row
