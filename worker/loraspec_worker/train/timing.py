"""Where a whole training run's wall time goes (issue 22): load, latent / caption caching, set-up,
warm-up (compile, CUDA-graph capture), steady steps, checkpoint saves, in-training samples.

The phase events carry `at` (seconds since the worker started, protocol.phase); each step is timed
from the top of the loop to its loss (the loss is read on the host every step, so the GPU work is
done by then; with debug.defer_loss_read to the previous step's loss, read once this step is dispatched,
so each step's time is still the GPU's pace in steady state); a periodic save is timed as the training thread's stall (its snapshot; the files are
written on a writer thread while the steps go on: `save_writes_s`, overlapped, not a part of the
total); whatever else runs between two steps (in-training samples, the step-0 samples before the
first, test delays) is `between_steps_s`; before the first phase (imports, request checks) is
`startup_s` (its parts, `startup_parts`: the worker's request checks, `import torch`, diffusers' import,
the device, the levers, the compile cache's load); the rest of the train phase (resume, the compile-cache save) `other_s`. The train
result's `timing` holds the breakdown.

Definitions (bench/gpu-wholerun.py and RESULTS use them):
- steady_s_per_step: the median step of the run's second half (warm-up is over by then);
- warm-up: the leading steps slower than WARMUP_FACTOR x steady; `warmup_s` is what they took
  beyond steady steps (the cost of compiling / capturing), `warmup_steps` how many there were;
- ratio: total wall / (steps x steady), the goal's measure (<= 1.15).
"""

from __future__ import annotations

import gc
import statistics
import time
from contextlib import contextmanager
from typing import Optional

from .. import protocol

# A leading step this many times slower than steady counts as warm-up.
WARMUP_FACTOR = 1.5
# A pause between two steps longer than this is a save or a sample (a step's own bookkeeping takes microseconds);
# the AFTER_GAP steps after it are the ones step_spread charges to it.
GAP_S = 0.05
AFTER_GAP = 5


class Timeline:
    def __init__(self) -> None:
        self.steps: list[float] = []
        self.saves: list[float] = []  # the training thread's stall per periodic save (the snapshot)
        self.save_writes: list[float] = []  # each save's file writes, on the writer thread while steps run
        self.samples = 0
        self.train_started: Optional[float] = None
        self.train_ended: Optional[float] = None
        self._step_t: Optional[float] = None
        self.after_gap: list[int] = []  # the indices of the steps that began after a save or a sample
        self.between_parts: dict[str, float] = {}  # named parts of the time between steps (between())
        self.waits: list[float] = []  # per step: the host's wait for the loss (loss_read()), the rest is host work
        self._wait = 0.0
        self.gc_seconds = [0.0, 0.0, 0.0]  # the interpreter's collections during the loop, by generation (gc_watch())
        self.gc_counts = [0, 0, 0]
        self.gc_max_s = 0.0

    def loop_begin(self) -> None:
        """The loop starts before its first step (the step-0 samples): what runs before it counts
        as between steps, as the other in-training samples."""
        if self.train_started is None:
            self.train_started = time.perf_counter()

    def step_begin(self) -> None:
        now = time.perf_counter()
        if self.train_started is None:
            self.train_started = now
        if self.train_ended is not None and now - self.train_ended > GAP_S:
            self.after_gap.append(len(self.steps))
        self._step_t = now

    def step_end(self) -> None:
        if self._step_t is not None:
            self.steps.append(time.perf_counter() - self._step_t)
            self.waits.append(self._wait)
            self._step_t = None
        self._wait = 0.0
        self.train_ended = time.perf_counter()

    @contextmanager
    def loss_read(self):
        """Times the host's wait for a step's loss (the `.item()` that waits for the GPU): a step's wait against
        the rest of it (the host dispatching work) says whether a slow step waited on the GPU or on the host."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self._wait += time.perf_counter() - t

    @contextmanager
    def gc_watch(self):
        """Counts the interpreter's cyclic collections while the loop runs, and their seconds by generation."""
        started: list[float] = []

        def callback(phase: str, info: dict) -> None:
            if phase == "start":
                started.append(time.perf_counter())
            elif started:
                seconds, generation = time.perf_counter() - started.pop(), min(2, int(info.get("generation", 0)))
                self.gc_seconds[generation] += seconds
                self.gc_counts[generation] += 1
                self.gc_max_s = max(self.gc_max_s, seconds)

        gc.callbacks.append(callback)
        try:
            yield
        finally:
            gc.callbacks.remove(callback)

    @contextmanager
    def save(self):
        """Times one checkpoint save; yields a dict whose `seconds` is set when it is done."""
        t = time.perf_counter()
        out: dict = {}
        try:
            yield out
        finally:
            out["seconds"] = time.perf_counter() - t
            self.saves.append(out["seconds"])

    @contextmanager
    def between(self, name: str):
        """Times a named part of what runs between two steps (the finite check before a save, the samples, a wait
        for the writer): summary()'s between_parts, with `rest` the between-steps time none of them holds."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.between_parts[name] = self.between_parts.get(name, 0.0) + time.perf_counter() - t

    def save_written(self, seconds: float) -> None:
        self.save_writes.append(seconds)

    def summary(self) -> dict:
        out = summarize(self.steps, self.saves, protocol.phase_marks(), self.train_started, self.train_ended,
                        total=protocol.elapsed())
        out["startup_parts"] = startup_parts(protocol.startup_marks(), out["startup_s"])
        out["save_writes_s"] = sum(self.save_writes)  # overlapped with the steps: not a part of total_s
        out["step_spread"] = step_spread(self.steps, self.after_gap, out["warmup_steps"], out["steady_s_per_step"])
        # the last step's samples run after it: in other_s, not between steps (the parts here count them all)
        parts = {k: round(v, 3) for k, v in self.between_parts.items()}
        out["between_parts"] = {**parts, "rest": round(max(0.0, out["between_steps_s"] + out["other_s"] - sum(parts.values())), 3)}
        out["host_split"] = host_split(self.steps, self.waits, out["warmup_steps"])
        out["gc"] = {"collections": list(self.gc_counts), "seconds": [round(x, 4) for x in self.gc_seconds], "max_s": round(self.gc_max_s, 4)}
        return out


def host_split(steps: list[float], waits: list[float], warmup_steps: int) -> dict:
    """Each step past warm-up as the host's wait for its loss (the GPU still working) and the rest (the host
    dispatching work, its Python and launches; with a full launch queue that too waits on the GPU): medians over
    all of them and over the slowest tenth. Slow steps that wait longer waited on the GPU (its clocks, its
    kernels); slow steps that wait no longer but work longer on the host waited on the host."""
    pairs = list(zip(steps, waits))[warmup_steps:]
    if not pairs:
        return {}
    slow = sorted(pairs, key=lambda p: p[0])[-max(1, len(pairs) // 10):]

    def med(rows: list[tuple[float, float]], f) -> float:
        return round(statistics.median(f(s, w) for s, w in rows), 4)

    return {"wait_median_s": med(pairs, lambda s, w: w), "host_median_s": med(pairs, lambda s, w: s - w),
            "slowest_tenth_wait_median_s": med(slow, lambda s, w: w), "slowest_tenth_host_median_s": med(slow, lambda s, w: s - w)}


def step_spread(steps: list[float], after_gap: list[int], warmup_steps: int, steady: Optional[float]) -> dict:
    """Where the steps past warm-up lose time against the steady (median) step: `excess_s` in all, the part in
    the AFTER_GAP steps that follow each save or sample (`after_gap_excess_s`: what a sample or a write costs
    the steps after it), the 90th and 99th percentile and the slowest step, and the median step of each stretch
    between two saves or samples (`segment_medians_s`: a lasting change after one)."""
    if not steps or not steady:
        return {}
    body = steps[warmup_steps:]
    near = {i for g in after_gap for i in range(max(g, warmup_steps), min(g + AFTER_GAP, len(steps)))}
    ordered = sorted(body) or [steady]

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    cuts = sorted({warmup_steps, *(g for g in after_gap if g > warmup_steps), len(steps)})
    segments = [round(statistics.median(steps[a:b]), 4) for a, b in zip(cuts, cuts[1:]) if b > a]
    return {"excess_s": round(sum(max(0.0, s - steady) for s in body), 3),
            "segment_medians_s": segments,  # the median step between two saves / samples: does a step slow down after one?
            "after_gap_excess_s": round(sum(max(0.0, steps[i] - steady) for i in near), 3),
            "after_gap_steps": len(near), "p90_s": pct(0.9), "p99_s": pct(0.99), "max_s": round(max(ordered), 4)}


def startup_parts(marks: list[tuple[str, float]], startup_s: float) -> dict[str, float]:
    """Each start-up part's seconds, from the previous mark (the clock's start for the first); what
    follows the last mark up to the first phase is `rest` (the load's own set-up before its phase)."""
    out: dict[str, float] = {}
    prev = 0.0
    for name, at in marks:
        out[name] = round(max(0.0, at - prev), 3)
        prev = at
    if marks:
        out["rest"] = round(max(0.0, startup_s - prev), 3)
    return out


def _phase_durations(marks: list[tuple[str, float]], total: float) -> dict[str, float]:
    """Each phase's seconds: from its mark to the next (the last to `total`); a repeated phase adds up."""
    out: dict[str, float] = {}
    for i, (name, at) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else total
        out[name] = out.get(name, 0.0) + max(0.0, end - at)
    return out


def warmup_of(steps: list[float]) -> tuple[Optional[float], int, float]:
    """(steady s/step, warm-up steps, warm-up seconds beyond steady) of a run's step durations."""
    if not steps:
        return None, 0, 0.0
    half = steps[len(steps) // 2 :]
    steady = statistics.median(half)
    n = 0
    while n < len(steps) and steps[n] > WARMUP_FACTOR * steady:
        n += 1
    return steady, n, sum(s - steady for s in steps[:n])


def summarize(steps: list[float], saves: list[float], marks: list[tuple[str, float]], train_started: Optional[float],
              train_ended: Optional[float], total: float) -> dict:
    phases = _phase_durations(marks, total)
    steady, warm_n, warm_s = warmup_of(steps)
    loop_s = (train_ended - train_started) if train_started is not None and train_ended is not None else 0.0
    steps_s = sum(steps)
    saves_s = sum(saves)  # the periodic saves, inside the loop; the final one is the "save" phase
    out = {
        "startup_s": marks[0][1] if marks else 0.0,  # imports, request checks, levers: before the first phase
        "load_s": phases.get("load", 0.0),
        "cache_s": phases.get("cache", 0.0),
        "setup_s": phases.get("setup", 0.0),
        "steps": len(steps),
        "steps_s": steps_s,
        "steady_s_per_step": steady,
        "warmup_steps": warm_n,
        "warmup_s": warm_s,
        "saves": len(saves),
        "saves_s": saves_s,
        "between_steps_s": max(0.0, loop_s - steps_s - saves_s),
        "final_save_s": phases.get("save", 0.0),
        "total_s": total,
        "ratio": total / (len(steps) * steady) if steady else None,
    }
    # the rest of the train phase: resume, the compile-cache save, anything outside the loop
    out["other_s"] = max(0.0, phases.get("train", 0.0) - loop_s)
    return out
