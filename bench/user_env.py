"""A worker process that sees only what a user's worker venv holds (issue 22: a user waits for the whole run).

`loraspec setup worker` (scripts/setup-worker.mjs) installs worker/requirements.txt, worker/requirements-data.txt
without dependencies and the worker itself into a venv of its own (and, where asked, worker/requirements-fa4.txt);
the GPU machines and many users' machines have more installed, and transformers imports some of it because it is there: scipy.optimize through its object-detection losses (0.70 s of an H200 host's start-up), the
torchvision image backends, torchaudio's audio utils (bench/RESULTS.md, "The worker's imports on the H200 host").
`extra_modules` lists the top-level modules of every installed distribution outside the requirements' dependency
closure (importlib.metadata: what pip would have installed for them, markers evaluated here); `block` marks them
absent in this process (a None entry in sys.modules: `import scipy` raises ModuleNotFoundError and
importlib.util.find_spec returns None, so the libraries take the paths they take in a venv without them). Bench
children call it before the worker imports anything (bench/gpu-wholerun.py --child; --device-env leaves it out).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# Installed with their dependencies / without (scripts/setup-worker.mjs: requirements-data.txt with --no-deps).
REQUIREMENTS = (ROOT / "worker" / "requirements.txt", ROOT / "worker" / "requirements-fa4.txt")
NO_DEPS = (ROOT / "worker" / "requirements-data.txt",)
# A venv's own tools (python -m venv puts pip there) and the worker itself (installed with -e).
ALWAYS = frozenset({"pip", "setuptools", "wheel", "loraspec-worker"})


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(paths=REQUIREMENTS) -> list[str]:
    lines = []
    for path in paths:
        if Path(path).exists():
            for raw in Path(path).read_text().splitlines():
                line = raw.split("#", 1)[0].strip()
                if line and not line.startswith("-"):
                    lines.append(line)
    return lines


def closure(lines: list[str]) -> set[str]:
    """The normalized names of the requirements and every installed distribution they require, transitively
    (extras named in a requirement followed; a dependency whose marker is false here is not)."""
    todo = [Requirement(line) for line in lines]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            dep = Requirement(text)
            if dep.marker is not None and not any(dep.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                continue
            todo.append(dep)
    return seen


def allowed_distributions() -> set[str]:
    """What a `loraspec setup worker` venv holds, as normalized distribution names."""
    no_deps = {_norm(Requirement(line).name) for line in requirement_lines(NO_DEPS)}
    return closure(requirement_lines()) | no_deps | {_norm(n) for n in ALWAYS}


def vendored() -> set[str]:
    """Distributions that live inside another package's `_vendor` folder (setuptools puts its own on sys.path once
    imported: jaraco.*, more_itertools, platformdirs, ...): part of that package, never left out (torch's compile path
    imports setuptools)."""
    return {_norm(d.metadata["Name"]) for d in md.distributions() if d.metadata["Name"] and "_vendor" in Path(str(d.locate_file(""))).parts}


def extra_modules(lines: list[str] | None = None) -> list[str]:
    """Top-level modules installed here that no allowed distribution provides (`lines`: requirements whose closure is
    allowed instead of allowed_distributions(), for tests)."""
    allowed = (allowed_distributions() if lines is None else closure(lines) | {_norm(n) for n in ALWAYS}) | vendored()
    out = []
    for module, dists in md.packages_distributions().items():
        if module in sys.stdlib_module_names or not module.isidentifier():
            continue
        if not any(_norm(d) in allowed for d in dists):
            out.append(module)
    return sorted(out)


def block(modules: list[str]) -> list[str]:
    """Marks `modules` absent in this process (those not imported yet); returns the ones it marked."""
    marked = [m for m in modules if m not in sys.modules]
    for m in marked:
        sys.modules[m] = None  # type: ignore[assignment]
    return marked
