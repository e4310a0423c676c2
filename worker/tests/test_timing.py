"""A whole run's step timing (train/timing.py): warm-up against the steady step, and where the steps past it lose
time (step_spread: the steps after a save or a sample against the rest), on a clock the test moves."""

from __future__ import annotations

import pytest

from loraspec_worker.train import timing


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(timing.time, "perf_counter", c)
    return c


def run(clock, durations, gaps):
    """Steps of the given durations; gaps[i]: seconds between step i-1's end and step i's start."""
    tl = timing.Timeline()
    for i, d in enumerate(durations):
        clock.t += gaps.get(i, 0.001)
        tl.step_begin()
        clock.t += d
        tl.step_end()
    return tl


def test_the_steps_after_a_sample_carry_their_excess_and_the_rest_is_spread(clock):
    steady = 0.3
    durations = [2.0] + [steady] * 39
    durations[20:23] = [0.6, 0.4, 0.35]  # after the sample at 20
    durations[30] = 0.5  # a slow step nowhere near one
    tl = run(clock, durations, {20: 5.0})
    assert tl.after_gap == [20]
    steady_s, warm_n, _ = timing.warmup_of(tl.steps)
    spread = timing.step_spread(tl.steps, tl.after_gap, warm_n, steady_s)
    assert warm_n == 1 and steady_s == pytest.approx(steady)
    assert spread["after_gap_excess_s"] == pytest.approx(0.3 + 0.1 + 0.05, abs=1e-6)
    assert spread["excess_s"] == pytest.approx(0.45 + 0.2, abs=1e-6)
    assert spread["after_gap_steps"] == timing.AFTER_GAP and spread["max_s"] == pytest.approx(0.6)
    assert spread["p90_s"] == pytest.approx(0.35) and spread["p99_s"] == pytest.approx(0.6)
    assert spread["segment_medians_s"] == [pytest.approx(steady)] * 2  # steps 1-19, 20-39


def test_a_lasting_slowdown_after_a_sample_shows_in_the_segment_medians(clock):
    tl = run(clock, [2.0] + [0.3] * 9 + [0.4] * 10 + [0.4] * 10, {10: 4.0, 20: 4.0})
    steady, warm_n, _ = timing.warmup_of(tl.steps)
    spread = timing.step_spread(tl.steps, tl.after_gap, warm_n, steady)
    assert spread["segment_medians_s"] == [pytest.approx(0.3), pytest.approx(0.4), pytest.approx(0.4)]


def test_a_gap_shorter_than_a_pause_marks_nothing_and_warm_up_steps_are_not_charged(clock):
    tl = run(clock, [3.0, 3.0, 0.2, 0.2, 0.2], {1: 10.0, 3: timing.GAP_S / 2})
    assert tl.after_gap == [1]  # the pause before step 1 (a step-0 sample, say); step 3's is bookkeeping
    steady, warm_n, _ = timing.warmup_of(tl.steps)
    spread = timing.step_spread(tl.steps, tl.after_gap, warm_n, steady)
    assert warm_n == 2 and spread["after_gap_excess_s"] == 0 and spread["after_gap_steps"] == 3  # steps 2-4 (1 is warm-up)


def test_no_steps_no_spread():
    assert timing.step_spread([], [], 0, None) == {}


def test_named_parts_between_steps_add_up(clock):
    tl = timing.Timeline()
    for name, seconds in (("samples", 2.0), ("finite_check", 0.25), ("samples", 1.0)):
        with tl.between(name):
            clock.t += seconds
    assert tl.between_parts == {"samples": pytest.approx(3.0), "finite_check": pytest.approx(0.25)}
    with pytest.raises(RuntimeError), tl.between("samples"):
        clock.t += 1.0
        raise RuntimeError("a failed render is still timed")
    assert tl.between_parts["samples"] == pytest.approx(4.0)
