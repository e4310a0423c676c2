"""A bench script (bench/<name>.py: a file name with dashes, not an importable module) loaded as a module for its
CPU tests."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
from bench_load import load_by_path  # noqa: E402


def load(filename: str):
    """bench/<filename> executed as a fresh module named after it (dashes as underscores)."""
    return load_by_path(Path(filename).stem.replace("-", "_"), BENCH / filename)
