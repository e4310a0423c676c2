"""The worker wheel (what `npm pack` ships and `loraspec setup worker` installs) builds from
worker/pyproject.toml with the toy-world tooling inside loraspec_worker/ or in a sibling package."""

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


@pytest.mark.parametrize("layout", ["inside", "sibling"])
def test_wheel_builds_with_either_toyworld_layout(tmp_path, layout):
    src = tmp_path / "worker"
    shutil.copytree(WORKER, src, ignore=SKIP)
    if layout == "sibling":
        shutil.move(str(src / "loraspec_worker" / "toyworld"), str(src / "toyworld_tools"))
    names = build_wheel(src, tmp_path / "out")
    assert "loraspec_worker/__main__.py" in names
    assert "loraspec_worker/version.py" in names
    tool = "loraspec_worker/toyworld/embedder.py" if layout == "inside" else "toyworld_tools/embedder.py"
    assert tool in names
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
