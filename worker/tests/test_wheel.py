"""The worker wheel (what `npm pack` ships and `loraspec setup worker` installs) builds from
worker/pyproject.toml and holds loraspec_worker only (the toy world's tooling stays in the checkout)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", "tests", "build", "dist", "__pycache__", "*.egg-info", "*.whl", ".pytest_cache")


def build_wheel(src: Path, out: Path) -> list[str]:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", "--no-build-isolation", str(src), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("loraspec_worker-*-py3-none-any.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_wheel_ships_the_worker_without_tests_or_the_toy_world(tmp_path):
    src = tmp_path / "worker"
    shutil.copytree(WORKER, src, ignore=SKIP)
    names = build_wheel(src, tmp_path / "out")
    assert "loraspec_worker/__main__.py" in names
    assert "loraspec_worker/version.py" in names
    assert "loraspec_worker/train/loop.py" in names
    assert (src / "toyworld" / "embedder.py").exists()
    assert not [n for n in names if n.startswith(("toyworld/", "tests/")) or "/tests/" in n or "/toyworld/" in n]
