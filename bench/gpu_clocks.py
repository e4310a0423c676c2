"""The GPU's clocks, power, temperature and clock-event (throttle) reasons while a bench run works (issue 22:
whether a whole run's slow stretches are the card's or the host's). `Sampler` runs `nvidia-smi --query-gpu ...
-lms INTERVAL` in the background into a CSV file; `summarize` reads such a file into the row's `gpu_clocks`.

  with Sampler(Path("run.clocks.csv")) as clocks:
      ...  # the run
  row["gpu_clocks"] = clocks.summary

The reasons are NVML's clocks-event bits (nvmlClocksEventReasons; `nvidia-smi -q -d PERFORMANCE` names them);
the summary gives each reason's share of the samples. Older drivers call the field clocks_throttle_reasons.active:
the sampler asks for the new name first and takes the old one when nvidia-smi refuses it.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Optional

REASON_FIELDS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")
FIELDS = ("timestamp", "clocks.sm", "clocks.max.sm", "power.draw", "power.limit", "temperature.gpu")
REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x10: "sync_boost",
           0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting"}


def _number(text: str) -> Optional[float]:
    try:
        return float(text.strip())
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def _seconds(stamp: str) -> Optional[float]:
    """nvidia-smi's "2026/12/06 14:20:01.123" as seconds of the day (a run fits in one day or wraps once)."""
    try:
        clock = stamp.strip().split(" ")[1]
        h, m, s = clock.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except (IndexError, ValueError):
        return None


def summarize(text: str, minute_s: float = 60.0) -> dict:
    """The samples of one run: SM clock p10 / median / max and its median per minute (to set beside the run's
    stretches between saves), the card's max SM clock, power median / max and the limit, the hottest
    temperature, and each clock-event reason's share of the samples."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(FIELDS) + 1:
            continue
        at, sm, sm_max, power, limit, temp = (_seconds(cells[0]), *(_number(c) for c in cells[1:6]))
        try:
            reasons = int(cells[6], 16)
        except ValueError:
            reasons = None
        if sm is not None:
            rows.append((at, sm, sm_max, power, limit, temp, reasons))
    if not rows:
        return {"samples": 0}
    sm = sorted(r[1] for r in rows)
    out: dict = {"samples": len(rows), "sm_mhz": {"p10": sm[len(sm) // 10], "median": statistics.median(sm), "max": sm[-1]}}
    known = [r for r in rows if r[0] is not None]
    if known:
        start, minutes = known[0][0], {}
        for r in known:
            minutes.setdefault(int(((r[0] - start) % 86400) // minute_s), []).append(r[1])
        out["sm_mhz_by_minute"] = [statistics.median(minutes[k]) for k in sorted(minutes)]
    for key, i in (("sm_max_mhz", 2), ("power_limit_w", 4)):
        values = [r[i] for r in rows if r[i] is not None]
        if values:
            out[key] = max(values)
    power = [r[3] for r in rows if r[3] is not None]
    if power:
        out["power_w"] = {"median": round(statistics.median(power), 1), "max": max(power)}
    temps = [r[5] for r in rows if r[5] is not None]
    if temps:
        out["temp_c_max"] = max(temps)
    masks = [r[6] for r in rows if r[6] is not None]
    if masks:
        out["reasons"] = {name: round(sum(1 for m in masks if m & bit) / len(masks), 3) for bit, name in REASONS.items() if any(m & bit for m in masks)}
    return out


class Sampler:
    """nvidia-smi sampling in the background for the `with` block; `summary` after it ({} without nvidia-smi, or
    when not `enabled`)."""

    def __init__(self, path: Path, interval_ms: int = 500, enabled: bool = True) -> None:
        self.path, self.interval_ms, self.enabled = path, interval_ms, enabled
        self.summary: dict = {}
        self._proc: Optional[subprocess.Popen] = None

    def _fields(self) -> Optional[str]:
        for reason in REASON_FIELDS:
            fields = ",".join((*FIELDS, reason))
            probe = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"], capture_output=True, text=True)
            if probe.returncode == 0:
                return fields
        return None

    def __enter__(self) -> "Sampler":
        fields = self._fields() if self.enabled and shutil.which("nvidia-smi") else None
        if fields:
            self._out = open(self.path, "w")
            self._proc = subprocess.Popen(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits", "-lms", str(self.interval_ms)],
                                          stdout=self._out, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._out.close()
        self.summary = summarize(self.path.read_text())
