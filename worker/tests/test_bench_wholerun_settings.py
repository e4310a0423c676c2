"""bench/gpu-wholerun.py --set: a request field set for every run (a typo refused: it would time the wrong run),
and the worker's debug hooks under debug.NAME (the A/B of debug.defer_loss_read)."""

from __future__ import annotations

import pytest

from bench_script import load

wholerun = load("gpu-wholerun.py")


def test_a_setting_sets_a_field_the_request_has_and_refuses_one_it_has_not():
    request = {"samples": {"every": 250}, "compile": True}
    wholerun.apply_setting(request, "samples.every", 8)
    wholerun.apply_setting(request, "compile", False)
    assert request == {"samples": {"every": 8}, "compile": False}
    for bad in ("sample.every", "compil", "samples.evry"):
        with pytest.raises(SystemExit, match="no such field"):
            wholerun.apply_setting(request, bad, 1)


def test_a_debug_hook_is_set_under_debug_made_when_absent():
    request = {"compile": True}
    wholerun.apply_setting(request, "debug.defer_loss_read", True)
    wholerun.apply_setting(request, "debug.log_batches", True)
    assert request["debug"] == {"defer_loss_read": True, "log_batches": True}
    assert wholerun.parse_setting("debug.defer_loss_read=true") == ("debug.defer_loss_read", True)
