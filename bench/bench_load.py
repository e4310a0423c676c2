"""Loads a bench script by path (their names have dashes, so `import` cannot): one home for the bench
scripts that reuse another's functions (peer-kohya.py uses peer-aitoolkit.py's and gpu-wholerun.py's)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def load_by_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
