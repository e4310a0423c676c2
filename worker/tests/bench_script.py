"""A bench script (bench/<name>.py: a file name with dashes, not an importable module) loaded as a module for its
CPU tests."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(filename: str):
    """bench/<filename> executed as a fresh module named after it (dashes as underscores)."""
    spec = importlib.util.spec_from_file_location(Path(filename).stem.replace("-", "_"), BENCH / filename)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
