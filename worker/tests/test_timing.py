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


def test_the_host_split_says_whether_slow_steps_waited_on_the_gpu_or_worked_on_the_host(clock):
    """Steps of 0.3 s that wait 0.25 s for their loss; the slow tenth either waits longer (the GPU) or works longer
    on the host with no wait (the host)."""

    def steps(slow_wait: float, slow_host: float):
        tl = timing.Timeline()
        for i in range(40):
            tl.step_begin()
            slow = i % 10 == 9
            clock.t += slow_host if slow else 0.05  # the host's dispatch
            with tl.loss_read():
                clock.t += slow_wait if slow else 0.25  # the wait in .item()
            tl.step_end()
        return timing.host_split(tl.steps, tl.waits, 0)

    gpu = steps(slow_wait=0.4, slow_host=0.05)
    assert gpu["wait_median_s"] == pytest.approx(0.25) and gpu["host_median_s"] == pytest.approx(0.05)
    assert gpu["slowest_tenth_wait_median_s"] == pytest.approx(0.4) and gpu["slowest_tenth_host_median_s"] == pytest.approx(0.05)
    host = steps(slow_wait=0.0, slow_host=0.45)
    assert host["slowest_tenth_wait_median_s"] == pytest.approx(0.0) and host["slowest_tenth_host_median_s"] == pytest.approx(0.45)
    assert timing.host_split([], [], 0) == {}


def test_a_step_with_several_loss_reads_waits_their_sum_and_warm_up_steps_are_left_out(clock):
    tl = timing.Timeline()
    for wait in (5.0, 0.1, 0.1):
        tl.step_begin()
        for _ in range(2):  # two micro-batches
            with tl.loss_read():
                clock.t += wait / 2
        clock.t += 0.02
        tl.step_end()
    assert tl.waits == [pytest.approx(5.0), pytest.approx(0.1), pytest.approx(0.1)]
    assert timing.host_split(tl.steps, tl.waits, 1)["wait_median_s"] == pytest.approx(0.1)


def test_the_collections_during_the_loop_are_counted_and_timed_and_the_watch_is_removed():
    import gc

    tl = timing.Timeline()
    before = len(gc.callbacks)
    with tl.gc_watch():
        gc.collect(0)
        gc.collect(2)
    gc.collect(2)  # after the watch: not counted
    assert len(gc.callbacks) == before
    assert tl.gc_counts[0] >= 1 and tl.gc_counts[2] == 1
    assert all(s >= 0 for s in tl.gc_seconds) and 0 < tl.gc_max_s <= sum(tl.gc_seconds) + 1e-9
