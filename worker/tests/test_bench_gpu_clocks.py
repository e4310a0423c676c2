"""bench/gpu_clocks.py: the card's clocks, power and throttle reasons beside a whole run (issue 22). The summary
from nvidia-smi's CSV, and the sampler's own subprocess handling against a stand-in nvidia-smi on PATH that
speaks the documented query format (an older driver's refusal of the new reason field included)."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest

from bench_script import load

gpu_clocks = load("gpu_clocks.py")

CSV = """2026/12/06 14:20:00.000, 1980, 1980, 650.10, 700.00, 60, 0x0000000000000000
2026/12/06 14:20:30.000, 1755, 1980, 699.90, 700.00, 66, 0x0000000000000004
2026/12/06 14:21:00.500, 1650, 1980, 700.20, 700.00, 71, 0x0000000000000024
2026/12/06 14:21:30.000, [N/A], 1980, 640.00, 700.00, 70, 0x0000000000000000
garbage line
2026/12/06 14:22:10.000, 1980, 1980, [N/A], 700.00, 62, not-hex
"""


def test_the_summary_reads_clocks_power_temperature_and_reasons():
    s = gpu_clocks.summarize(CSV)
    assert s["samples"] == 4  # the [N/A] clock and the garbage line are skipped
    assert s["sm_mhz"] == {"p10": 1650.0, "median": pytest.approx((1755 + 1980) / 2), "max": 1980.0}
    assert s["sm_mhz_by_minute"] == [pytest.approx((1980 + 1755) / 2), 1650.0, 1980.0]  # minutes 0, 1, 2 from the first sample
    assert s["sm_max_mhz"] == 1980.0 and s["power_limit_w"] == 700.0
    assert s["power_w"] == {"median": pytest.approx(699.9), "max": pytest.approx(700.2)} and s["temp_c_max"] == 71.0
    # the reasons as shares of the samples that carry a mask: sw power cap in 2 of 3, sw thermal in 1 of 3
    assert s["reasons"] == {"sw_power_cap": pytest.approx(0.667, abs=1e-3), "sw_thermal_slowdown": pytest.approx(0.333, abs=1e-3)}
    assert gpu_clocks.summarize("") == {"samples": 0}


def fake_nvidia_smi(folder, accepts_new_field: bool) -> None:
    script = folder / "nvidia-smi"
    refuse = "" if accepts_new_field else 'case "$*" in *clocks_event_reasons*) echo "Field is not a valid field" >&2; exit 2;; esac'
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        {refuse}
        case "$*" in *-lms*) while true; do echo "2026/12/06 14:20:00.000, 1900, 1980, 600.0, 700.0, 60, 0x4"; sleep 0.05; done;; esac
        echo "2026/12/06 14:20:00.000, 1900, 1980, 600.0, 700.0, 60, 0x4"
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("new_field", [True, False])
def test_the_sampler_runs_nvidia_smi_in_the_background_and_stops_it(new_field, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_nvidia_smi(bin_dir, new_field)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    import time

    with gpu_clocks.Sampler(tmp_path / "run.clocks.csv", interval_ms=50) as clocks:
        time.sleep(0.4)
    assert clocks.summary["samples"] >= 2 and clocks.summary["reasons"] == {"sw_power_cap": 1.0}
    assert clocks._proc.poll() is not None  # stopped


def test_without_nvidia_smi_or_when_disabled_it_records_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with gpu_clocks.Sampler(tmp_path / "a.csv") as clocks:
        pass
    assert clocks.summary == {} and not (tmp_path / "a.csv").exists()
    with gpu_clocks.Sampler(tmp_path / "b.csv", enabled=False) as clocks:
        pass
    assert clocks.summary == {}
